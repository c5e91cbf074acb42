with source as (
    select * from {{ source('delivery', 'decisions') }}
),

renamed as (
    select
        decision_id,
        decision_date,
        decided_at,
        user_id,
        action,
        is_holdout,
        is_exploration,
        offer_id,
        product_id,
        channel,
        send_at,
        send_hour,
        propensity,
        policy_version,
        model_version,
        expected_uplift,
        expected_margin,
        expected_cost,
        candidate_count,
        reason,
        action = 'send' and not is_holdout as is_treated
    from source
)

select * from renamed
