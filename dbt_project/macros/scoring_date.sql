{# The scoring date as a SQL date expression: the var if given, else the day after the last loaded event. #}
{% macro scoring_date() -%}
    {%- if var('scoring_date') -%}
        date '{{ var("scoring_date") }}'
    {%- else -%}
        (select coalesce(max(event_date), current_date - 1) + 1 from {{ ref('stg_events') }})
    {%- endif -%}
{%- endmacro %}
