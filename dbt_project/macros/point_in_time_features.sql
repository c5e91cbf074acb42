{#
  The one feature computation shared by training (fct_training_examples) and serving (fct_promo_candidates),
  so the two cannot skew. `pairs` names a CTE with: pair_id, user_id, product_id, offer_id, as_of_date,
  cut_at (= as_of_date 00:00). Every feature uses only events strictly before cut_at: day aggregates
  take days < as_of_date, event-level parts filter event_at < cut_at. Emits CTEs ending in `pit_features`.
#}
{% macro point_in_time_features(pairs) %}
user_cuts as (
    select distinct user_id, as_of_date, cut_at from {{ pairs }}
),

user_activity as (
    select
        user_cuts.user_id,
        user_cuts.as_of_date,
        coalesce(sum(a.n_events) filter (where a.event_date >= user_cuts.as_of_date - 7), 0) as u_events_7d,
        coalesce(sum(a.n_events) filter (where a.event_date >= user_cuts.as_of_date - 30), 0) as u_events_30d,
        coalesce(sum(a.n_events), 0) as u_events_90d,
        coalesce(sum(a.n_purchases) filter (where a.event_date >= user_cuts.as_of_date - 30), 0) as u_purchases_30d,
        coalesce(sum(a.n_purchases), 0) as u_purchases_90d,
        coalesce(sum(a.n_views), 0) as u_views_90d,
        coalesce(sum(a.n_carts), 0) as u_carts_90d,
        coalesce(sum(a.revenue), 0) as u_revenue_90d,
        coalesce(sum(a.purchased_price_sum) / nullif(sum(a.n_purchases), 0), 0) as u_avg_price_90d,
        max(a.event_date) as last_active_date,
        -- Ordered modes: a tie (two hours seen equally often) goes to the smallest on every run.
        mode(a.top_hour order by a.top_hour) as u_active_hour,
        mode(a.top_platform order by a.top_platform) as u_preferred_platform
    from user_cuts
    left join {{ ref('int_user_daily_activity') }} as a
        on a.user_id = user_cuts.user_id
        and a.event_date < user_cuts.as_of_date
        and a.event_date >= user_cuts.as_of_date - 90
    group by 1, 2
),

category_medians as (
    select category, median(price) as median_price from {{ ref('stg_products') }} group by category
),

user_purchases as (
    select
        user_cuts.user_id,
        user_cuts.as_of_date,
        avg(events.price / category_medians.median_price) as u_price_sensitivity
    from user_cuts
    inner join {{ ref('stg_events') }} as events
        on events.user_id = user_cuts.user_id
        and events.event_type = 'purchase'
        and events.event_at < user_cuts.cut_at
        and events.event_at >= user_cuts.cut_at - interval 90 day
    inner join {{ ref('stg_products') }} as products on products.product_id = events.product_id
    inner join category_medians on category_medians.category = products.category
    group by 1, 2
),

user_messages as (
    select
        user_cuts.user_id,
        user_cuts.as_of_date,
        count(*) filter (where d.decided_at >= user_cuts.cut_at - interval 7 day) as u_sends_7d,
        count(*) as u_sends_30d
    from user_cuts
    inner join {{ ref('stg_decisions') }} as d
        on d.user_id = user_cuts.user_id
        and d.is_treated
        and d.decided_at < user_cuts.cut_at
        and d.decided_at >= user_cuts.cut_at - interval 30 day
    group by 1, 2
),

user_responses as (
    -- Only outcomes whose attribution window had closed before the cut: no peeking at later purchases.
    select
        user_cuts.user_id,
        user_cuts.as_of_date,
        count(*) as n_past_sends,
        count(*) filter (where o.label_convert) as n_past_conversions,
        count(*) filter (where o.label_click) as n_past_clicks
    from user_cuts
    inner join {{ ref('int_decision_outcomes') }} as o
        on o.user_id = user_cuts.user_id
        and o.is_treated
        and o.window_closes_at <= user_cuts.cut_at
    group by 1, 2
),

user_sequences as (
    select
        user_id,
        as_of_date,
        list(product_id order by event_at desc, event_id) as seq_product_ids,
        list(category order by event_at desc, event_id) as seq_categories,
        list(event_type order by event_at desc, event_id) as seq_event_types,
        list(age_hours order by event_at desc, event_id) as seq_age_hours
    from (
        select
            user_cuts.user_id,
            user_cuts.as_of_date,
            events.event_id,
            events.event_at,
            events.product_id,
            coalesce(products.category, 'unknown') as category,
            events.event_type,
            date_diff('second', events.event_at, user_cuts.cut_at) / 3600.0 as age_hours,
            row_number() over (
                partition by user_cuts.user_id, user_cuts.as_of_date order by events.event_at desc, events.event_id
            ) as recency_rank
        from user_cuts
        inner join {{ ref('stg_events') }} as events
            on events.user_id = user_cuts.user_id
            and events.event_at < user_cuts.cut_at
            and events.event_at >= user_cuts.cut_at - interval 30 day
        left join {{ ref('stg_products') }} as products on products.product_id = events.product_id
    )
    where recency_rank <= {{ var('sequence_length') }}
    group by 1, 2
),

pair_product_activity as (
    select
        p.pair_id,
        count(*) filter (where e.event_type = 'view' and e.event_at >= p.cut_at - interval 7 day) as u_product_views_7d,
        count(*) filter (where e.event_type in ('cart', 'favorite') and e.event_at >= p.cut_at - interval 30 day)
            as u_product_carts_30d,
        count(*) filter (where e.event_type = 'purchase') as u_product_purchases_90d
    from {{ pairs }} as p
    inner join {{ ref('stg_events') }} as e
        on e.user_id = p.user_id
        and e.product_id = p.product_id
        and e.event_at < p.cut_at
        and e.event_at >= p.cut_at - interval 90 day
    group by 1
),

-- Category totals per user and cut first, then one lookup per pair: joining every pair to all of its
-- user's category-days (pairs x ~40 rows) spilled tens of GB at a million users.
user_category_events as (
    select u.user_id, u.as_of_date, c.category, sum(c.n_events) as n_events
    from user_cuts as u
    inner join {{ ref('int_user_category_daily') }} as c
        on c.user_id = u.user_id
        and c.event_date < u.as_of_date
        and c.event_date >= u.as_of_date - 90
    group by 1, 2, 3
),

user_category_totals as (
    select user_id, as_of_date, sum(n_events) as n_events from user_category_events group by 1, 2
),

pair_category_affinity as (
    select
        p.pair_id,
        uc.n_events / ut.n_events as u_cat_affinity
    from {{ pairs }} as p
    inner join {{ ref('stg_products') }} as products on products.product_id = p.product_id
    inner join user_category_totals as ut on ut.user_id = p.user_id and ut.as_of_date = p.as_of_date
    left join user_category_events as uc
        on uc.user_id = p.user_id and uc.as_of_date = p.as_of_date and uc.category = products.category
),

product_cuts as (
    select distinct product_id, as_of_date from {{ pairs }}
),

product_activity as (
    select
        product_cuts.product_id,
        product_cuts.as_of_date,
        coalesce(sum(a.n_views), 0) as p_popularity_30d,
        (coalesce(sum(a.n_purchases), 0) + 1.0) / (coalesce(sum(a.n_views), 0) + 20.0) as p_conversion_rate_30d
    from product_cuts
    left join {{ ref('int_product_daily_activity') }} as a
        on a.product_id = product_cuts.product_id
        and a.event_date < product_cuts.as_of_date
        and a.event_date >= product_cuts.as_of_date - 30
    group by 1, 2
),

product_prices as (
    select
        product_id,
        category,
        brand,
        price,
        margin_rate,
        percent_rank() over (partition by category order by price) as p_price_pct_in_category
    from {{ ref('stg_products') }}
),

pit_features as (
    select
        p.pair_id,
        date_diff('day', cast(users.signup_at as date), p.as_of_date)::double as u_tenure_days,
        coalesce(date_diff('day', ua.last_active_date, p.as_of_date), 999)::double as u_recency_days,
        ua.u_events_7d::double as u_events_7d,
        ua.u_events_30d::double as u_events_30d,
        ua.u_events_90d::double as u_events_90d,
        ua.u_purchases_30d::double as u_purchases_30d,
        ua.u_purchases_90d::double as u_purchases_90d,
        ua.u_carts_90d::double as u_carts_90d,
        -- The shopping funnel, smoothed towards typical rates when there is little history: how often a view
        -- becomes a cart, and how often a cart ends in a purchase (cart abandoners are who a discount moves).
        ((ua.u_carts_90d + 1.0) / (ua.u_views_90d + 10.0))::double as u_carts_per_view_90d,
        ((ua.u_purchases_90d + 1.0) / (ua.u_carts_90d + 2.0))::double as u_purchases_per_cart_90d,
        ua.u_revenue_90d::double as u_revenue_90d,
        ua.u_avg_price_90d::double as u_avg_price_90d,
        coalesce(up.u_price_sensitivity, 1.0)::double as u_price_sensitivity,
        ((coalesce(ur.n_past_conversions, 0) + 0.2) / (coalesce(ur.n_past_sends, 0) + 10.0))::double
            as u_discount_responsiveness,
        -- A message is clicked more often than it is bought from, and who clicks is who a message moves: the
        -- same responsiveness, read from more outcomes.
        ((coalesce(ur.n_past_clicks, 0) + 0.5) / (coalesce(ur.n_past_sends, 0) + 10.0))::double as u_click_rate,
        coalesce(um.u_sends_7d, 0)::double as u_sends_7d,
        coalesce(um.u_sends_30d, 0)::double as u_sends_30d,
        coalesce(ua.u_active_hour, 12)::integer as u_active_hour,
        users.city_tier::integer as u_city_tier,
        users.member_level as u_member_level,
        users.locale as u_locale,
        users.gender as u_gender,
        coalesce(ua.u_preferred_platform, 'unknown') as u_preferred_platform,
        coalesce(pca.u_cat_affinity, 0)::double as u_cat_affinity,
        coalesce(ppa.u_product_views_7d, 0)::double as u_product_views_7d,
        coalesce(ppa.u_product_carts_30d, 0)::double as u_product_carts_30d,
        coalesce(ppa.u_product_purchases_90d, 0)::double as u_product_purchases_90d,
        prices.category as p_category,
        prices.brand as p_brand,
        prices.price as p_price,
        prices.p_price_pct_in_category,
        prices.margin_rate as p_margin_rate,
        pa.p_popularity_30d::double as p_popularity_30d,
        pa.p_conversion_rate_30d::double as p_conversion_rate_30d,
        offers.offer_type as o_type,
        offers.offer_value as o_value,
        offers.min_spend as o_min_spend,
        {{ offer_depth('offers.offer_type', 'offers.offer_value', 'offers.min_spend', 'prices.price') }} as o_depth,
        coalesce(seq.seq_product_ids, []::varchar[]) as seq_product_ids,
        coalesce(seq.seq_categories, []::varchar[]) as seq_categories,
        coalesce(seq.seq_event_types, []::varchar[]) as seq_event_types,
        coalesce(seq.seq_age_hours, []::double[]) as seq_age_hours
    from {{ pairs }} as p
    inner join {{ ref('stg_users') }} as users on users.user_id = p.user_id
    inner join product_prices as prices on prices.product_id = p.product_id
    inner join {{ ref('stg_offers') }} as offers on offers.offer_id = p.offer_id
    left join user_activity as ua on ua.user_id = p.user_id and ua.as_of_date = p.as_of_date
    left join user_purchases as up on up.user_id = p.user_id and up.as_of_date = p.as_of_date
    left join user_messages as um on um.user_id = p.user_id and um.as_of_date = p.as_of_date
    left join user_responses as ur on ur.user_id = p.user_id and ur.as_of_date = p.as_of_date
    left join user_sequences as seq on seq.user_id = p.user_id and seq.as_of_date = p.as_of_date
    left join pair_product_activity as ppa on ppa.pair_id = p.pair_id
    left join pair_category_affinity as pca on pca.pair_id = p.pair_id
    left join product_activity as pa on pa.product_id = p.product_id and pa.as_of_date = p.as_of_date
)
{% endmacro %}
