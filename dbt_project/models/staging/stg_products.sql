with source as (
    select * from {{ source('raw', 'products') }}
),

renamed as (
    select
        product_id,
        title,
        coalesce(brand, 'unbranded') as brand,
        category,
        subcategory,
        price,
        -- A missing cost is assumed at 60 % of price so margins stay defined; flagged for the catalogue team.
        coalesce(cost, price * 0.6) as cost,
        cost is null as cost_is_assumed,
        (price - coalesce(cost, price * 0.6)) / price as margin_rate,
        coalesce(is_active, true) as is_active
    from source
)

select * from renamed
