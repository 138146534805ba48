{#-
    Every raw CRM row with its triage status, pseudonymised and minimised.
    Names, address, postal code and passport number do not leave staging
    (names are sealed in the vault for subject access only).

    In flight, before pseudonymisation: the CRM export typed, normalised and
    triaged (crm_customers_triage, shared with vault_customer_names). A record
    changed in the CRM is exported again: the version with the latest
    updated_at is kept.

    Incremental by triage group, like the event models (docs/decisions.md, 33
    and 65): a run triages again only the customers with a row in a new or
    purged batch.
-#}
{%- set group_keys = {'customer_key': normalise_key('raw_rows.customer_id')} %}
{%- set pseudonymised_keys = {'customer_key': 'customer_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('crm', 'customers'), group_keys, pseudonymised_keys) }},

regions as (

    select * from {{ ref('city_regions') }}

),

-- The normalisers run in Python: once per distinct value, joined back by value.
emails as (

    {{ per_distinct_value('source', 'email', normalise_email('email'), 'email_normalised') }}

),

phones as (

    {{ per_distinct_value('source', 'phone', normalise_phone('phone'), 'phone_normalised') }}

),

cities as (

    {{ per_distinct_value('source', 'city', normalise_name('city'), 'city_normalised') }}

),

normalised as {{ inline_cte() }} (

    select
        {{ normalise_key('source.customer_id') }} as customer_id,
        emails.email_normalised,
        nullif(trim(source.email), '') is not null as has_email_raw,
        phones.phone_normalised,
        nullif(trim(source.phone), '') is not null as has_phone_raw,
        {{ normalise_card('source.loyalty_card_number') }} as loyalty_card_normalised,
        source.birth_date,
        lower(trim(source.gender)) as gender_raw,
        cities.city_normalised,
        upper(trim(source.country_code)) as country_code_raw,
        source.created_at,
        source.updated_at,
        coalesce(source.is_deleted, false) as is_deleted,
        source._loaded_at,
        source._batch_id,
        {{ triage_fingerprint(crm_customers_fingerprint_columns('source')) }} as _row_fingerprint
    from triage_rows as source  -- noqa: RF04
    left join emails
        on source.email is not distinct from emails.email
    left join phones
        on source.phone is not distinct from phones.phone
    left join cities
        on source.city is not distinct from cities.city

),

triaged as (

    {{ crm_customers_triage('normalised') }}

),

customers as (

    select * from triaged

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
            when {{ regexp_contains('customers.country_code_raw', '^[A-Z]{2}$') }} then customers.country_code_raw
        end as country_code,
        customers.created_at,
        customers.updated_at,
        customers.is_deleted,
        {{ issue_list({
            'invalid_email': 'customers.has_email_raw and customers.email_normalised is null',
            'invalid_phone': 'customers.has_phone_raw and customers.phone_normalised is null',
            'implausible_birth_date': "customers.birth_date is not null and not (customers.birth_date between date '1900-01-01' and customers.updated_at::date)",
            'unknown_gender': "customers.gender_raw is not null and customers.gender_raw not in ('m', 'male', 'м', 'f', 'female', 'ж')",
            'invalid_country_code': "customers.country_code_raw is not null and not " ~ regexp_contains('customers.country_code_raw', '^[A-Z]{2}$'),
            'missing_updated_at': 'customers.updated_at is null',
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from customers
    left join regions
        on customers.city_normalised = regions.city_normalised

)

select * from final
{{ triage_scope_markers(group_keys) }}
