with source as (
    select * from {{ source('raw', 'offers') }}
),

renamed as (
    select
        offer_id,
        offer_type,
        value as offer_value,
        coalesce(min_spend, 0) as min_spend,
        coalesce(scope, 'all') as scope,
        scope_value,
        coalesce(valid_from, timestamp '1970-01-01') as valid_from,
        coalesce(valid_to, timestamp '2999-12-31') as valid_to
    from source
)

select * from renamed
