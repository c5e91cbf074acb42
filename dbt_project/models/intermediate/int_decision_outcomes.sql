-- Attribution: what happened after each logged decision. label_convert has one definition for every
-- row (sent, holdout or "nothing"): the user bought the row's product within attribution_hours of send_at,
-- read from events, so uplift compares like with like. Only decisions whose window has closed (by the last
-- loaded event) are labelled.

with decisions as (
    select * from {{ ref('stg_decisions') }}
),

feedback as (
    select
        delivery_id,
        bool_or(feedback_event = 'opened') as opened,
        bool_or(feedback_event = 'clicked') as clicked,
        bool_or(feedback_event = 'converted') as attributed_convert,
        min(event_at) filter (where feedback_event = 'converted') as attributed_convert_at,
        coalesce(sum(revenue) filter (where feedback_event = 'converted'), 0) as attributed_revenue
    from {{ ref('stg_feedback') }}
    group by delivery_id
),

horizon as (
    select coalesce(max(event_at), timestamp '1970-01-01') as last_event_at from {{ ref('stg_events') }}
),

purchases as (
    select
        decisions.decision_id,
        count(*) as n_purchases,
        sum(events.price * events.quantity) as revenue
    from decisions
    inner join {{ ref('stg_events') }} as events
        on events.user_id = decisions.user_id
        and events.product_id = decisions.product_id
        and events.event_type = 'purchase'
        and events.event_at >= decisions.send_at
        and events.event_at < decisions.send_at + to_hours({{ var('attribution_hours') }})
    group by decisions.decision_id
),

outcomes as (
    select
        decisions.decision_id,
        decisions.user_id,
        decisions.decision_date,
        decisions.decided_at,
        decisions.send_at,
        decisions.is_treated,
        coalesce(feedback.opened, false) as label_open,
        coalesce(feedback.clicked, false) as label_click,
        coalesce(purchases.n_purchases, 0) > 0 as label_convert,
        coalesce(purchases.revenue, 0) as label_revenue,
        coalesce(feedback.attributed_convert, false) as label_attributed_convert,
        feedback.attributed_convert_at,
        decisions.send_at + to_hours({{ var('attribution_hours') }}) as window_closes_at,
        decisions.send_at + to_hours({{ var('attribution_hours') }}) <= horizon.last_event_at as window_closed,
        -- How much of the window the loaded events cover: what a delayed-feedback correction scales by.
        greatest(0, least({{ var('attribution_hours') }},
            date_diff('second', decisions.send_at, horizon.last_event_at) / 3600.0)) as observed_hours
    from decisions
    cross join horizon
    left join feedback on feedback.delivery_id = decisions.decision_id
    left join purchases using (decision_id)
    where decisions.product_id is not null
)

select * from outcomes
