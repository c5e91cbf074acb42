{# Fraction of the price an offer gives away (docs/contracts.md); the simulator uses the same rule. #}
{% macro offer_depth(offer_type, value, min_spend, price) -%}
least(0.95, greatest(0.0, case {{ offer_type }}
    when 'percent_off' then {{ value }} / 100.0
    when 'amount_off' then least({{ value }}, {{ price }}) / {{ price }}
    when 'spend_threshold' then {{ value }} / greatest({{ price }}, {{ min_spend }})
    when 'free_shipping' then least({{ value }}, {{ price }}) / {{ price }}
    else 0.0
end))
{%- endmacro %}
