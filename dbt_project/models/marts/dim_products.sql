with products as (
    select * from {{ ref('stg_products') }}
),

final as (
    select
        product_id,
        title,
        brand,
        category,
        subcategory,
        price,
        cost,
        margin_rate,
        is_active
    from products
)

select * from final
