{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): raw clickstream typed, normalised and triaged.
    A repeated event_id is a re-delivery: the first one received is kept.
-#}
with source as (

    select * from {{ source('web', 'events') }}

),

normalised as (

    select
        {{ normalise_key('event_id') }} as event_id,
        {{ normalise_token('anonymous_id') }} as anonymous_id,
        {{ normalise_key('customer_id') }} as customer_id,
        lower(trim(event_type)) as event_type,
        event_at,
        received_at,
        page_url,
        referrer_url,
        ip_address,
        user_agent,
        nullif(trim(product_sku), '') as product_sku,
        nullif(trim(search_query), '') is not null as has_search_query,
        properties,
        _loaded_at,
        _batch_id,
        {{ row_fingerprint(['event_id', 'anonymous_id', 'customer_id', 'event_type', 'event_at',
            'received_at', 'page_url', 'referrer_url', 'ip_address', 'user_agent', 'product_sku',
            'search_query', 'properties']) }} as _row_fingerprint
    from source

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case
            when event_id is null then 'missing_key'
            when anonymous_id is null then 'missing_anonymous_id'
            when received_at is null and event_at is null then 'missing_timestamp'
            when event_type is null or event_type not in (" ~ accepted_values_sql('web_event_types') ~ ") then 'unknown_event_type'
        end",
        copy_columns=['event_id'],
        key_columns=['event_id'],
        version_order='received_at nulls last'
    ) }}

)

select * from triaged
