{#-
    Every raw clickstream row with its triage status, pseudonymised and minimised:
    no full IP (truncated to /24 or /48), no raw URL (identifier-bearing query
    parameters removed), no search text, no user agent (device class only),
    no free-form properties.
-#}
with events as (

    select * from {{ ref('base_web__events') }}

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        event_id,
        {{ pseudonymise("'anonymous_id'", 'anonymous_id') }} as anonymous_key,
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key,
        event_type,
        -- The client clock can run ahead: a client time later than the server's
        -- receipt (beyond a few minutes of tolerance) is replaced by the receipt time.
        case
            when event_at is null then received_at
            when received_at is not null and event_at > received_at + interval 5 minute then received_at
            else event_at
        end as event_at,
        received_at,
        {{ clean_url('page_url') }} as page_url_clean,
        regexp_extract({{ clean_url('referrer_url') }}, '^[a-z][a-z0-9+.-]*://([^/:?#]+)', 1) as referrer_host,
        {{ truncate_ip('ip_address') }} as ip_prefix,
        {{ device_class('user_agent') }} as device_class,
        product_sku,
        has_search_query,
        {{ issue_list({
            'future_client_time': 'received_at is not null and event_at > received_at + interval 5 minute',
            'missing_client_time': 'event_at is null',
            'late_arrival': "received_at is not null and event_at is not null and received_at > event_at + interval 1 day",
            'invalid_properties_json': 'properties is not null and not coalesce(try(json_valid(properties)), false)',
            'invalid_ip': "nullif(trim(ip_address), '') is not null and " ~ truncate_ip('ip_address') ~ " is null",
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from events

)

select * from final
