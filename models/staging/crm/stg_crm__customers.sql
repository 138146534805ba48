{#- The current version of every CRM customer: one row per customer_key. -#}
with triaged as (

    select * from {{ ref('stg_crm__customers_triaged') }}

),

final as (

    select
        customer_key,
        email_key,
        phone_key,
        loyalty_card_key,
        birth_year,
        gender,
        region,
        country_code,
        created_at,
        updated_at,
        is_deleted,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
