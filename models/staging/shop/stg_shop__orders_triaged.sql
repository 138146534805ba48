{#-
    Every raw order row with its triage status. Checkout contacts are
    pseudonymised; the delivery address never leaves staging, the delivery
    city is generalised to a region. The order id is staged as its keyed
    pseudonym (order_key, id type order_id), as on the order lines
    (docs/decisions.md, 50).

    In flight, before pseudonymisation: raw orders typed, normalised and
    triaged. A changed order is exported again: the version with the latest
    updated_at is kept.

    Incremental by triage group, like the event models (docs/decisions.md, 33).
    The purge rewrites orders in place (contact and delivery fields nulled),
    which batch row counts cannot see: a batch is also changed when its content
    checksum differs from the one recorded after the last run (decision 65).
-#}
{%- set group_keys = {'order_key': normalise_key('raw_rows.order_id')} %}
{%- set pseudonymised_keys = {'order_key': 'order_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('shop', 'orders'), group_keys, pseudonymised_keys) }},

regions as (

    select * from {{ ref('city_regions') }}

),

-- The normalisers run in Python: once per distinct value (a customer checks out
-- with the same email and phone many times, to one of a few cities), joined back by value.
emails as (

    {{ per_distinct_value('source', 'email', normalise_email('email'), 'email_normalised') }}

),

phones as (

    {{ per_distinct_value('source', 'phone', normalise_phone('phone'), 'phone_normalised') }}

),

delivery_cities as (

    {{ per_distinct_value('source', 'delivery_city', normalise_name('delivery_city'), 'delivery_city_normalised') }}

),

normalised as {{ inline_cte() }} (

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
        delivery_cities.delivery_city_normalised,
        lower(trim(source.payment_method)) as payment_method,
        source.updated_at,
        source._loaded_at,
        source._batch_id,
        {{ triage_fingerprint(['source.order_id', 'source.customer_id', 'source.email', 'source.phone',
            'source.ordered_at', 'source.status', 'source.total_amount', 'source.currency',
            'source.channel', 'source.store_id', 'source.delivery_address', 'source.delivery_city',
            'source.payment_method', 'source.updated_at']) }} as _row_fingerprint
    from triage_rows as source  -- noqa: RF04
    left join emails
        on source.email is not distinct from emails.email
    left join phones
        on source.phone is not distinct from phones.phone
    left join delivery_cities
        on source.delivery_city is not distinct from delivery_cities.delivery_city

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

),

orders as (

    select * from triaged

),

final as (

    select
        orders._batch_id,
        orders._loaded_at,
        orders.row_status,
        orders.reject_reason,
        {{ pseudonymise("'order_id'", 'orders.order_id') }} as order_key,
        {{ pseudonymise("'customer_id'", 'orders.customer_id') }} as customer_key,
        {{ pseudonymise("'email'", 'orders.email_normalised') }} as email_key,
        {{ pseudonymise("'phone'", 'orders.phone_normalised') }} as phone_key,
        orders.customer_id is null as is_guest_checkout,
        orders.ordered_at,
        orders.status,
        orders.total_amount,
        case when orders.currency in ({{ accepted_values_sql('currencies') }}) then orders.currency end as currency,
        case
            when orders.channel in ({{ accepted_values_sql('order_channels') }}) then orders.channel
            else 'other'
        end as channel,
        orders.store_id,
        coalesce(
            regions.region,
            case when orders.delivery_city_normalised is not null then 'other' end
        ) as delivery_region,
        case
            when orders.payment_method in ({{ accepted_values_sql('payment_methods') }}) then orders.payment_method
            when orders.payment_method is not null then 'other'
        end as payment_method,
        orders.updated_at,
        {{ issue_list({
            'invalid_email': 'orders.has_email_raw and orders.email_normalised is null',
            'invalid_phone': 'orders.has_phone_raw and orders.phone_normalised is null',
            'missing_amount': 'orders.total_amount is null',
            'negative_amount': 'orders.total_amount < 0',
            'unknown_currency': "orders.currency is null or orders.currency not in (" ~ accepted_values_sql('currencies') ~ ")",
            'unknown_channel': "orders.channel is null or orders.channel not in (" ~ accepted_values_sql('order_channels') ~ ")",
            'unknown_payment_method': "orders.payment_method is not null and orders.payment_method not in (" ~ accepted_values_sql('payment_methods') ~ ")",
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from orders
    left join regions
        on orders.delivery_city_normalised = regions.city_normalised

)

select * from final
{{ triage_scope_markers(group_keys) }}
