with source as (
    select * from {{ source('raw', 'events') }}
),

renamed as (
    select
        event_id,
        user_id,
        event_type,
        event_at,
        event_date,
        product_id,
        session_id,
        coalesce(quantity, 1) as quantity,
        price,
        platform,
        _loaded_at as loaded_at
    from source
)

select * from renamed
