{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='event_date') }}

-- User x category x day event counts: category affinity as of any day is a sum over earlier days.

with events as (
    select * from {{ ref('stg_events') }}
    {% if is_incremental() %}
    where event_date in (
        select distinct event_date from {{ ref('stg_events') }}
        where loaded_at > (select coalesce(max(loaded_at), timestamp '1970-01-01') from {{ this }})
    )
    {% endif %}
),

products as (
    select product_id, category from {{ ref('stg_products') }}
),

daily as (
    select
        events.user_id,
        events.event_date,
        products.category,
        count(*) as n_events,
        max(events.loaded_at) as loaded_at
    from events
    inner join products using (product_id)
    group by 1, 2, 3
)

select * from daily
