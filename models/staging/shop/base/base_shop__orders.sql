{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): raw orders typed, normalised and triaged.
    A changed order is exported again: the version with the latest updated_at is kept.
-#}
with source as (

    select * from {{ source('shop', 'orders') }}

),

-- The normalisers run in Python: once per distinct value (a customer checks out
-- with the same email and phone many times), joined back by value.
emails as (

    {{ per_distinct_value('source', 'email', normalise_email('email'), 'email_normalised') }}

),

phones as (

    {{ per_distinct_value('source', 'phone', normalise_phone('phone'), 'phone_normalised') }}

),

normalised as (

    select
        {{ normalise_key('source.order_id') }} as order_id,
        {{ normalise_key('source.customer_id') }} as customer_id,
        emails.email_normalised,
        nullif(trim(source.email), '') is not null as has_email_raw,
        phones.phone_normalised,
        nullif(trim(source.phone), '') is not null as has_phone_raw,
        source.ordered_at,
        lower(trim(source.status)) as status,
        source.total_amount,
        upper(trim(source.currency)) as currency,
        lower(trim(source.channel)) as channel,
        nullif(trim(source.store_id), '') as store_id,
        {{ normalise_name('source.delivery_city') }} as delivery_city_normalised,
        lower(trim(source.payment_method)) as payment_method,
        source.updated_at,
        source._loaded_at,
        source._batch_id,
        {{ row_fingerprint(['source.order_id', 'source.customer_id', 'source.email', 'source.phone',
            'source.ordered_at', 'source.status', 'source.total_amount', 'source.currency',
            'source.channel', 'source.store_id', 'source.delivery_address', 'source.delivery_city',
            'source.payment_method', 'source.updated_at']) }} as _row_fingerprint
    from source
    left join emails
        on source.email is not distinct from emails.email
    left join phones
        on source.phone is not distinct from phones.phone

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case
            when order_id is null then 'missing_key'
            when ordered_at is null then 'missing_timestamp'
            when status is null or status not in (" ~ accepted_values_sql('order_statuses') ~ ") then 'unknown_status'
        end",
        copy_columns=['_row_fingerprint'],
        key_columns=['order_id'],
        version_order='updated_at desc nulls last'
    ) }}

)

select * from triaged
