{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='event_date') }}

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
        product_id,
        event_date,
        count(*) filter (where event_type = 'view') as n_views,
        count(*) filter (where event_type = 'purchase') as n_purchases,
        count(distinct user_id) as n_users,
        max(loaded_at) as loaded_at
    from events
    where product_id is not null
    group by product_id, event_date
)

select * from daily
