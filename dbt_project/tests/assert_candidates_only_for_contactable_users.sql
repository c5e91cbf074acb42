-- Two models feed the test; Dagster attaches it, as an asset check, to the one it guards.
{{ config(meta={'dagster': {'ref': {'name': 'fct_promo_candidates'}}}) }}
select c.user_id
from {{ ref('fct_promo_candidates') }} as c
inner join {{ ref('dim_users') }} as u using (user_id)
where not u.contactable
