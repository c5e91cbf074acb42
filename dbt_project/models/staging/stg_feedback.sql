with source as (
    select * from {{ source('raw', 'feedback') }}
),

renamed as (
    select
        feedback_id,
        delivery_id,
        event as feedback_event,
        event_at,
        feedback_date,
        order_id,
        revenue
    from source
)

select * from renamed
