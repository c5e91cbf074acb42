-- Point in time: one row per logged decision whose attribution window has closed, with features computed
-- only from events before the decision day (cut_at = decision_date 00:00 <= decided_at), exactly as the
-- candidates of that day were scored.

with decisions as (
    select
        d.*,
        o.label_open,
        o.label_click,
        o.label_convert,
        o.label_revenue,
        o.label_attributed_convert
    from {{ ref('stg_decisions') }} as d
    inner join {{ ref('int_decision_outcomes') }} as o using (decision_id)
    where o.window_closed
),

pairs as (
    select
        decision_id as pair_id,
        user_id,
        product_id,
        offer_id,
        decision_date as as_of_date,
        cast(decision_date as timestamp) as cut_at
    from decisions
),

{{ point_in_time_features('pairs') }},

final as (
    select
        decisions.decision_id,
        decisions.user_id,
        decisions.product_id,
        decisions.offer_id,
        decisions.decision_date as as_of_date,
        decisions.decided_at,
        decisions.channel,
        decisions.send_hour,
        decisions.send_at,
        decisions.action,
        decisions.is_treated,
        decisions.is_holdout,
        decisions.propensity,
        decisions.policy_version,
        decisions.label_open,
        decisions.label_click,
        decisions.label_convert,
        decisions.label_revenue,
        decisions.label_attributed_convert,
        pit_features.* exclude (pair_id)
    from decisions
    inner join pit_features on pit_features.pair_id = decisions.decision_id
)

select * from final
