{# The landing contract's platforms in name order (orchestration/contract.py PLATFORMS; ingestion quarantines
   any other). A (time, platform) pair then packs into one integer, time first: its max is the day's last
   event, ties going to the greater name, as one cheap aggregate instead of an arg_max over a struct. #}
{% macro platforms() %}{{ return(['app', 'mini_program', 'web']) }}{% endmacro %}

{% macro last_event_key(at_column, platform_column) -%}
    max(epoch_us({{ at_column }}) * {{ platforms() | length + 1 }}
        + case {{ platform_column }}{% for p in platforms() %} when '{{ p }}' then {{ loop.index0 }}{% endfor %}
          else {{ platforms() | length }} end)
{%- endmacro %}

{% macro last_event_hour(key) -%}
    hour(make_timestamp({{ key }} // {{ platforms() | length + 1 }}))
{%- endmacro %}

{% macro last_event_platform(key) -%}
    ([{% for p in platforms() %}'{{ p }}'{% if not loop.last %}, {% endif %}{% endfor %}])[{{ key }} % {{ platforms() | length + 1 }} + 1]
{%- endmacro %}
