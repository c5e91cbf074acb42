with as_of as (
    select {{ scoring_date() }} as as_of_date
),

activity as (
    select
        a.product_id,
        sum(a.n_views) as views_30d,
        sum(a.n_purchases) as purchases_30d,
        sum(a.n_users) as user_days_30d
    from {{ ref('int_product_daily_activity') }} as a
    cross join as_of
    where a.event_date < as_of.as_of_date and a.event_date >= as_of.as_of_date - 30
    group by a.product_id
),

final as (
    select
        products.product_id,
        as_of.as_of_date,
        products.category,
        products.brand,
        products.price,
        products.margin_rate,
        coalesce(activity.views_30d, 0) as popularity_30d,
        coalesce(activity.purchases_30d, 0) as purchases_30d,
        -- Smoothed so a product with few views gets the shop-wide prior, not 0 or 1.
        (coalesce(activity.purchases_30d, 0) + 1.0) / (coalesce(activity.views_30d, 0) + 20.0) as conversion_rate_30d,
        percent_rank() over (partition by products.category order by products.price) as price_pct_in_category,
        rank() over (partition by products.category order by coalesce(activity.views_30d, 0) desc, products.product_id)
            as popularity_rank_in_category
    from {{ ref('stg_products') }} as products
    cross join as_of
    left join activity using (product_id)
    where products.is_active
)

select * from final
