{#-
    Every raw CRM row with its triage status, pseudonymised and minimised.
    Names, address, postal code and passport number do not leave staging
    (names are sealed in the vault for subject access only).
-#}
with customers as (

    select * from {{ ref('base_crm__customers') }}

),

regions as (

    select * from {{ ref('city_regions') }}

),

final as (

    select
        customers._batch_id,
        customers._loaded_at,
        customers.row_status,
        customers.reject_reason,
        {{ pseudonymise("'customer_id'", 'customers.customer_id') }} as customer_key,
        {{ pseudonymise("'email'", 'customers.email_normalised') }} as email_key,
        {{ pseudonymise("'phone'", 'customers.phone_normalised') }} as phone_key,
        {{ pseudonymise("'loyalty_card'", 'customers.loyalty_card_normalised') }} as loyalty_card_key,
        case
            when customers.birth_date between date '1900-01-01' and customers.updated_at::date
                then year(customers.birth_date)
        end as birth_year,
        case customers.gender_raw
            when 'm' then 'm'
            when 'male' then 'm'
            when 'м' then 'm'
            when 'f' then 'f'
            when 'female' then 'f'
            when 'ж' then 'f'
        end as gender,
        coalesce(
            regions.region,
            case when customers.city_normalised is not null then 'other' end
        ) as region,
        case
            when regexp_matches(customers.country_code_raw, '^[A-Z]{2}$') then customers.country_code_raw
        end as country_code,
        customers.created_at,
        customers.updated_at,
        customers.is_deleted,
        {{ issue_list({
            'invalid_email': 'customers.has_email_raw and customers.email_normalised is null',
            'invalid_phone': 'customers.has_phone_raw and customers.phone_normalised is null',
            'implausible_birth_date': "customers.birth_date is not null and not (customers.birth_date between date '1900-01-01' and customers.updated_at::date)",
            'unknown_gender': "customers.gender_raw is not null and customers.gender_raw not in ('m', 'male', 'м', 'f', 'female', 'ж')",
            'invalid_country_code': "customers.country_code_raw is not null and not regexp_matches(customers.country_code_raw, '^[A-Z]{2}$')",
            'missing_updated_at': 'customers.updated_at is null',
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from customers
    left join regions
        on customers.city_normalised = regions.city_normalised

)

select * from final
