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
        count(*) filter (where event_type in ('cart', 'favorite')) as n_carts,
        count(*) filter (where event_type = 'purchase') as n_purchases,
        coalesce(sum(price * quantity) filter (where event_type = 'purchase'), 0) as revenue,
        coalesce(sum(price) filter (where event_type = 'purchase'), 0) as purchased_price_sum,
        -- The day's last event as one integer (macros/platforms.sql): its hour and platform; the mode over
        -- days of these is the user's active hour and preferred platform.
        {{ last_event_key('event_at', 'platform') }} as last_event_key,
        max(loaded_at) as loaded_at
    from events
    group by user_id, event_date
),

decoded as (
    select
        * exclude (last_event_key, loaded_at),
        {{ last_event_hour('last_event_key') }} as top_hour,
        {{ last_event_platform('last_event_key') }} as top_platform,  -- ties broken by name: reruns agree
        loaded_at
    from daily
)

select * from decoded
