with source as (
    select * from {{ source('raw', 'users') }}
),

renamed as (
    select
        user_id,
        signup_at,
        coalesce(gender, 'U') as gender,
        birth_year,
        city,
        city_tier,
        coalesce(member_level, 'unknown') as member_level,
        coalesce(locale, 'en-US') as locale,
        coalesce(timezone, 'UTC') as timezone,
        consent_push,
        consent_sms,
        consent_email
    from source
)

select * from renamed
