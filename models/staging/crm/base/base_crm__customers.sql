{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): raw CRM rows typed, normalised and triaged.
    Plaintext normalised identifiers exist here and are never materialised:
    stg_crm__customers_triaged keeps their pseudonyms, the vault seals them.
-#}
with source as (

    select * from {{ source('crm', 'customers') }}

),

normalised as (

    select
        {{ normalise_key('customer_id') }} as customer_id,
        {{ normalise_email('email') }} as email_normalised,
        nullif(trim(email), '') is not null as has_email_raw,
        {{ normalise_phone('phone') }} as phone_normalised,
        nullif(trim(phone), '') is not null as has_phone_raw,
        {{ normalise_card('loyalty_card_number') }} as loyalty_card_normalised,
        {{ normalise_name('first_name') }} as first_name_normalised,
        {{ normalise_name('last_name') }} as last_name_normalised,
        {{ normalise_name('middle_name') }} as middle_name_normalised,
        birth_date,
        lower(trim(gender)) as gender_raw,
        {{ normalise_name('city') }} as city_normalised,
        upper(trim(country_code)) as country_code_raw,
        created_at,
        updated_at,
        coalesce(is_deleted, false) as is_deleted,
        _loaded_at,
        _batch_id,
        {{ row_fingerprint(['customer_id', 'email', 'phone', 'first_name', 'last_name', 'middle_name',
            'birth_date', 'gender', 'city', 'postal_code', 'address', 'country_code', 'passport_number',
            'loyalty_card_number', 'created_at', 'updated_at', 'is_deleted']) }} as _row_fingerprint
    from source

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case when customer_id is null then 'missing_key' end",
        copy_columns=['_row_fingerprint'],
        key_columns=['customer_id'],
        version_order='updated_at desc nulls last, created_at desc nulls last'
    ) }}

)

select * from triaged
