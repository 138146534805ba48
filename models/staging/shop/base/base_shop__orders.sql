{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): raw orders typed, normalised and triaged.
    A changed order is exported again: the version with the latest updated_at is kept.
-#}
with source as (

    select * from {{ source('shop', 'orders') }}

),

normalised as (

    select
        {{ normalise_key('order_id') }} as order_id,
        {{ normalise_key('customer_id') }} as customer_id,
        {{ normalise_email('email') }} as email_normalised,
        nullif(trim(email), '') is not null as has_email_raw,
        {{ normalise_phone('phone') }} as phone_normalised,
        nullif(trim(phone), '') is not null as has_phone_raw,
        ordered_at,
        lower(trim(status)) as status,
        total_amount,
        upper(trim(currency)) as currency,
        lower(trim(channel)) as channel,
        nullif(trim(store_id), '') as store_id,
        {{ normalise_name('delivery_city') }} as delivery_city_normalised,
        lower(trim(payment_method)) as payment_method,
        updated_at,
        _loaded_at,
        _batch_id,
        {{ row_fingerprint(['order_id', 'customer_id', 'email', 'phone', 'ordered_at', 'status',
            'total_amount', 'currency', 'channel', 'store_id', 'delivery_address', 'delivery_city',
            'payment_method', 'updated_at']) }} as _row_fingerprint
    from source

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
