with outcomes as (
    select * from {{ ref('int_decision_outcomes') }}
),

decisions as (
    select * from {{ ref('stg_decisions') }}
),

final as (
    select
        decisions.decision_id,
        decisions.decision_date,
        decisions.user_id,
        decisions.action,
        decisions.is_holdout,
        decisions.is_exploration,
        decisions.is_treated,
        decisions.offer_id,
        decisions.product_id,
        decisions.channel,
        decisions.propensity,
        decisions.policy_version,
        decisions.model_version,
        decisions.expected_uplift,
        decisions.expected_margin,
        outcomes.label_open,
        outcomes.label_click,
        outcomes.label_convert,
        outcomes.label_revenue,
        outcomes.label_attributed_convert,
        outcomes.attributed_convert_at,
        outcomes.window_closed,
        outcomes.observed_hours
    from decisions
    inner join outcomes using (decision_id)
)

select * from final
