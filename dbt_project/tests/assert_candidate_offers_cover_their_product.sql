-- Two models feed the test; Dagster attaches it, as an asset check, to the one it guards.
{{ config(meta={'dagster': {'ref': {'name': 'fct_promo_candidates'}}}) }}
-- Every candidate's offer applies to its product (scope) and is valid on the scoring date: a message must
-- never promise a discount the checkout would refuse.
select c.user_id, c.product_id, c.offer_id, c.as_of_date
from {{ ref('fct_promo_candidates') }} as c
inner join {{ ref('stg_offers') }} as o using (offer_id)
inner join {{ ref('stg_products') }} as p using (product_id)
where not (
        o.scope = 'all'
        or (o.scope = 'category' and o.scope_value = p.category)
        or (o.scope = 'product' and o.scope_value = p.product_id)
    )
    or not (o.valid_from <= cast(c.as_of_date as timestamp) and o.valid_to > cast(c.as_of_date as timestamp))
