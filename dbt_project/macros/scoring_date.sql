{# The scoring date as a SQL date expression: PROMO_SCORING_DATE (how Dagster passes the partition: an
   environment variable keeps dbt's partial parse, changed --vars would not), else the var, else the day
   after the last loaded event. The ref is taken either way, so the dependency is in every parse. #}
{% macro scoring_date() -%}
    {%- set after_last_event -%}
        (select coalesce(max(event_date), current_date - 1) + 1 from {{ ref('stg_events') }})
    {%- endset -%}
    {%- set day = env_var('PROMO_SCORING_DATE', '') or var('scoring_date') -%}
    {%- if day -%}
        date '{{ day }}'
    {%- else -%}
        {{ after_last_event }}
    {%- endif -%}
{%- endmacro %}
