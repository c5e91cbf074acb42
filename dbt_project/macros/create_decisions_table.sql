{# Same layout as orchestration/warehouse.py DECISIONS_DDL (docs/contracts.md, delivery.decisions). #}
{% macro create_decisions_table() -%}
create table if not exists delivery.decisions (
    decision_id varchar, decision_date date, decided_at timestamp, user_id varchar, action varchar,
    is_holdout boolean, is_exploration boolean, offer_id varchar, product_id varchar, channel varchar,
    send_at timestamp, send_hour integer, propensity double, policy_version varchar, model_version varchar,
    expected_uplift double, expected_margin double, expected_cost double, candidate_count integer,
    reason varchar
)
{%- endmacro %}
