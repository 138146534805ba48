{#-
    Every raw clickstream row with its triage status, pseudonymised and minimised:
    no full IP (truncated to /24 or /48), no raw URL (identifier-bearing query
    parameters removed), no search text, no user agent (device class only),
    no free-form properties.
-#}
with events as (

    select * from {{ ref('base_web__events') }}

),

-- HMAC costs four SHA-256 blocks per value: pseudonymise each distinct
-- identifier once and join back (a cookie has tens of events).
anonymous_keys as (

    select
        anonymous_id,
        {{ pseudonymise("'anonymous_id'", 'anonymous_id') }} as anonymous_key
    from (select distinct anonymous_id from events) as distinct_ids

),

customer_keys as (

    select
        customer_id,
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key
    from (select distinct customer_id from events) as distinct_ids

),

minimised as (

    select
        *,
        {{ clean_url('page_url') }} as page_url_clean,
        regexp_extract({{ clean_url('referrer_url') }}, '^[a-z][a-z0-9+.-]*://([^/:?#]+)', 1) as referrer_host,
        {{ truncate_ip('ip_address') }} as ip_prefix,
        {{ device_class('user_agent') }} as device_class
    from events

),

final as (

    select
        events._batch_id,
        events._loaded_at,
        events.row_status,
        events.reject_reason,
        events.event_id,
        anonymous_keys.anonymous_key,
        customer_keys.customer_key,
        events.event_type,
        -- The client clock can run ahead: a client time later than the server's
        -- receipt (beyond a few minutes of tolerance) is replaced by the receipt time.
        case
            when events.event_at is null then events.received_at
            when events.received_at is not null and events.event_at > events.received_at + interval 5 minute then events.received_at
            else events.event_at
        end as event_at,
        events.received_at,
        events.page_url_clean,
        events.referrer_host,
        events.ip_prefix,
        events.device_class,
        events.product_sku,
        events.has_search_query,
        {{ issue_list({
            'future_client_time': 'events.received_at is not null and events.event_at > events.received_at + interval 5 minute',
            'missing_client_time': 'events.event_at is null',
            'late_arrival': "events.received_at is not null and events.event_at is not null and events.received_at > events.event_at + interval 1 day",
            'invalid_properties_json': 'events.properties is not null and not coalesce(try(json_valid(events.properties)), false)',
            'invalid_ip': "nullif(trim(events.ip_address), '') is not null and events.ip_prefix is null",
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from minimised as events
    left join anonymous_keys
        on events.anonymous_id = anonymous_keys.anonymous_id
    left join customer_keys
        on events.customer_id = customer_keys.customer_id

)

select * from final
