{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='as_of_date') }}

-- For the scoring date: per contactable user a bounded set of (product, offer) candidates, each with the
-- source that proposed it and a reason a marketer reads. Users with no recent behaviour get the shop's
-- popular products in its most popular categories (cold start). Features come from the same macro as
-- the training examples.

with as_of as (
    select {{ scoring_date() }} as as_of_date, cast({{ scoring_date() }} as timestamp) as cut_at
),

users as (
    select user_id from {{ ref('dim_users') }} where contactable
),

recent as (
    select
        e.user_id,
        e.product_id,
        count(*) filter (where e.event_type = 'view' and e.event_at >= as_of.cut_at - interval 7 day) as views_7d,
        count(*) filter (where e.event_type in ('cart', 'favorite') and e.event_at >= as_of.cut_at - interval 30 day) as carts_30d,
        count(*) filter (where e.event_type = 'purchase' and e.event_at >= as_of.cut_at - interval 30 day) as purchases_30d,
        max(e.event_at) filter (where e.event_type = 'purchase') as last_purchase_at
    from {{ ref('stg_events') }} as e
    cross join as_of
    where e.event_at < as_of.cut_at and e.event_at >= as_of.cut_at - interval 90 day and e.product_id is not null
    group by 1, 2
),

viewed_not_bought as (
    select user_id, product_id, 1 as priority, 'viewed_not_bought' as candidate_source,
        'viewed ' || views_7d || '× in 7 days, not bought' as candidate_reason, views_7d as strength
    from recent where views_7d > 0 and purchases_30d = 0
),

carted_not_bought as (
    select user_id, product_id, 0 as priority, 'carted_not_bought' as candidate_source,
        'added to cart or favourites ' || carts_30d || '× in 30 days, not bought' as candidate_reason,
        carts_30d as strength
    from recent where carts_30d > 0 and purchases_30d = 0
),

repurchase as (
    select user_id, product_id, 2 as priority, 'repurchase' as candidate_source,
        'bought ' || date_diff('day', last_purchase_at, as_of.cut_at) || ' days ago: time to restock' as candidate_reason,
        1 as strength
    from recent cross join as_of
    where last_purchase_at is not null and last_purchase_at < as_of.cut_at - interval 14 day
),

user_top_category as (
    select user_id, top_category from {{ ref('fct_user_features') }} where top_category is not null
),

popular as (
    select product_id, category, popularity_rank_in_category
    from {{ ref('fct_product_features') }}
    where popularity_rank_in_category <= 3
),

category_affinity as (
    select u.user_id, p.product_id, 3 as priority, 'category_affinity' as candidate_source,
        'popular in ' || u.top_category || ', the category they browse most' as candidate_reason,
        4 - p.popularity_rank_in_category as strength
    from user_top_category as u
    inner join popular as p on p.category = u.top_category
),

shop_top_categories as (
    select category from (
        select category, sum(popularity_30d) as views from {{ ref('fct_product_features') }} group by 1
    ) order by views desc, category limit 2
),

cold_start as (
    select users.user_id, p.product_id, 4 as priority, 'cold_start_prior' as candidate_source,
        'new or inactive: popular in ' || p.category || ' across the shop' as candidate_reason,
        4 - p.popularity_rank_in_category as strength
    from users
    inner join popular as p on p.category in (select category from shop_top_categories)
    where users.user_id not in (select user_id from user_top_category)
),

proposals as (
    select * from carted_not_bought
    union all select * from viewed_not_bought
    union all select * from repurchase
    union all select * from category_affinity
    union all select * from cold_start
),

ranked_products as (
    select *,
        row_number() over (partition by user_id order by priority, strength desc, product_id) as product_rank
    from (
        -- A product proposed by several sources keeps its strongest source.
        select *, row_number() over (partition by user_id, product_id order by priority, strength desc) as dup
        from proposals
        where user_id in (select user_id from users)
    )
    where dup = 1
),

offers as (
    select o.* from {{ ref('stg_offers') }} as o cross join as_of
    where o.valid_from <= as_of.cut_at and o.valid_to > as_of.cut_at
),

top_products as (
    select r.user_id, r.product_id, r.candidate_source, r.candidate_reason, r.product_rank, products.category
    from ranked_products as r
    inner join {{ ref('stg_products') }} as products on products.product_id = r.product_id
    where r.product_rank <= {{ var('max_candidates_per_user') }} // 2
),

covering_offers as (
    -- The offers whose scope covers the product (the whole shop, its category or the product itself), as
    -- three equality joins on the keys only: one join with an OR condition is a nested loop over every
    -- product x offer, and ranking its wide rows spilled tens of GB at a million users.
    select t.user_id, t.product_id, offers.offer_id
    from top_products as t cross join offers where offers.scope = 'all'
    union all
    select t.user_id, t.product_id, offers.offer_id
    from top_products as t inner join offers on offers.scope = 'category' and offers.scope_value = t.category
    union all
    select t.user_id, t.product_id, offers.offer_id
    from top_products as t inner join offers on offers.scope = 'product' and offers.scope_value = t.product_id
),

candidates as (
    -- Each product is paired with two of the offers that cover it, rotated by a hash of (user, product,
    -- day) so every offer type is tried over time; the predictor then decides which, if any, is worth
    -- sending. An offer whose scope excludes the product would promise a discount the checkout refuses.
    select t.user_id, t.product_id, o.offer_id, t.candidate_source, t.candidate_reason, t.product_rank, o.offer_rank
    from (
        select
            c.user_id, c.product_id, c.offer_id,
            row_number() over (
                partition by c.user_id, c.product_id
                order by hash(c.user_id || c.product_id || c.offer_id || cast(as_of.as_of_date as varchar))
            ) as offer_rank
        from covering_offers as c
        cross join as_of
    ) as o
    inner join top_products as t using (user_id, product_id)
    where o.offer_rank <= 2
),

pairs as (
    select
        c.user_id || '|' || c.product_id || '|' || c.offer_id as pair_id,
        c.user_id,
        c.product_id,
        c.offer_id,
        as_of.as_of_date,
        as_of.cut_at
    from candidates as c
    cross join as_of
),

{{ point_in_time_features('pairs') }},

final as (
    select
        c.user_id,
        c.product_id,
        c.offer_id,
        as_of.as_of_date,
        c.candidate_source,
        c.candidate_reason,
        pit_features.* exclude (pair_id)
    from candidates as c
    cross join as_of
    inner join pit_features on pit_features.pair_id = c.user_id || '|' || c.product_id || '|' || c.offer_id
)

select * from final
