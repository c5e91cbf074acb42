with users as (
    select * from {{ ref('stg_users') }}
),

final as (
    select
        user_id,
        signup_at,
        gender,
        birth_year,
        city_tier,
        member_level,
        locale,
        timezone,
        consent_push,
        consent_sms,
        consent_email,
        consent_push or consent_sms or consent_email as contactable
    from users
)

select * from final
