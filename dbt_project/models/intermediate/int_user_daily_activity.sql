{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='event_date') }}

-- One row per user and day: the grain every user feature is rolled up from, so a point-in-time feature
-- for day D is a sum over days < D, not a scan of raw events. Incremental: only days (re)loaded since the
-- last build are recomputed, and a re-loaded day replaces itself.

with events as (
    select * from {{ ref('stg_events') }}
    {% if is_incremental() %}
    where event_date in (
        select distinct event_date from {{ ref('stg_events') }}
        where loaded_at > (select coalesce(max(loaded_at), timestamp '1970-01-01') from {{ this }})
    )
    {% endif %}
),

daily as (
    select
        user_id,
        event_date,
        count(*) as n_events,
        count(*) filter (where event_type = 'view') as n_views,
        count(*) filter (where event_type = 'purchase') as n_purchases,
        coalesce(sum(price * quantity) filter (where event_type = 'purchase'), 0) as revenue,
        coalesce(sum(price) filter (where event_type = 'purchase'), 0) as purchased_price_sum,
        -- The hour and platform of the day's last event: cheap (no holistic aggregate per user-day);
        -- the mode over days of these is the user's active hour and preferred platform.
        hour(max(event_at)) as top_hour,
        arg_max(platform, (event_at, platform)) as top_platform,  -- ties broken by name: reruns agree
        max(loaded_at) as loaded_at
    from events
    group by user_id, event_date
)

select * from daily
