-- User features as of the scoring date (events strictly before it), one row per user: what a marketer
-- browses and what the daily plan reads for send hours and channels.

with as_of as (
    select {{ scoring_date() }} as as_of_date
),

activity as (
    select
        a.user_id,
        coalesce(sum(a.n_events) filter (where a.event_date >= as_of.as_of_date - 7), 0) as events_7d,
        coalesce(sum(a.n_events) filter (where a.event_date >= as_of.as_of_date - 30), 0) as events_30d,
        sum(a.n_events) as events_90d,
        coalesce(sum(a.n_purchases) filter (where a.event_date >= as_of.as_of_date - 7), 0) as purchases_7d,
        coalesce(sum(a.n_purchases) filter (where a.event_date >= as_of.as_of_date - 30), 0) as purchases_30d,
        sum(a.n_purchases) as purchases_90d,
        coalesce(sum(a.revenue) filter (where a.event_date >= as_of.as_of_date - 7), 0) as revenue_7d,
        coalesce(sum(a.revenue) filter (where a.event_date >= as_of.as_of_date - 30), 0) as revenue_30d,
        sum(a.revenue) as revenue_90d,
        max(a.event_date) as last_active_date,
        mode(a.top_hour order by a.top_hour) as active_hour_utc,  -- ordered: ties go to the smallest, every run
        mode(a.top_platform order by a.top_platform) as preferred_platform
    from {{ ref('int_user_daily_activity') }} as a
    cross join as_of
    where a.event_date < as_of.as_of_date and a.event_date >= as_of.as_of_date - 90
    group by a.user_id
),

categories as (
    select
        user_id,
        arg_max(category, (n_events, category)) as top_category,  -- ties broken by name: reruns agree
        max(n_events) / sum(n_events) as top_category_share
    from (
        select c.user_id, c.category, sum(c.n_events) as n_events
        from {{ ref('int_user_category_daily') }} as c
        cross join as_of
        where c.event_date < as_of.as_of_date and c.event_date >= as_of.as_of_date - 90
        group by 1, 2
    )
    group by user_id
),

responses as (
    select
        o.user_id,
        count(*) as past_sends,
        count(*) filter (where o.label_convert) as past_conversions
    from {{ ref('int_decision_outcomes') }} as o
    cross join as_of
    where o.is_treated and o.window_closes_at <= cast(as_of.as_of_date as timestamp)
    group by o.user_id
),

final as (
    select
        users.user_id,
        as_of.as_of_date,
        coalesce(date_diff('day', activity.last_active_date, as_of.as_of_date), 999) as recency_days,
        coalesce(activity.events_7d, 0) as events_7d,
        coalesce(activity.events_30d, 0) as events_30d,
        coalesce(activity.events_90d, 0) as events_90d,
        coalesce(activity.purchases_7d, 0) as frequency_7d,
        coalesce(activity.purchases_30d, 0) as frequency_30d,
        coalesce(activity.purchases_90d, 0) as frequency_90d,
        coalesce(activity.revenue_7d, 0) as monetary_7d,
        coalesce(activity.revenue_30d, 0) as monetary_30d,
        coalesce(activity.revenue_90d, 0) as monetary_90d,
        categories.top_category,
        coalesce(categories.top_category_share, 0) as top_category_share,
        (coalesce(responses.past_conversions, 0) + 0.2) / (coalesce(responses.past_sends, 0) + 10.0)
            as discount_responsiveness,
        coalesce(responses.past_sends, 0) as past_sends,
        coalesce(activity.active_hour_utc, 12) as active_hour_utc,
        coalesce(activity.preferred_platform, 'unknown') as preferred_platform
    from {{ ref('stg_users') }} as users
    cross join as_of
    left join activity using (user_id)
    left join categories using (user_id)
    left join responses using (user_id)
)

select * from final
