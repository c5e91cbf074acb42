select c.user_id
from {{ ref('fct_promo_candidates') }} as c
inner join {{ ref('dim_users') }} as u using (user_id)
where not u.contactable
