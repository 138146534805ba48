{#-
    Every raw clickstream row with its triage status, pseudonymised and minimised:
    no full IP (truncated to /24 or /48), no raw URL (identifier-bearing query
    parameters removed), no search text, no user agent (device class only),
    no free-form properties.

    In flight, before pseudonymisation: raw clickstream typed, normalised and triaged.
    A repeated event_id is a re-delivery: the first one received is kept.

    The raw event id stays in flight: the staged event_key is its keyed pseudonym
    (id type web_event_id), so no staged row joins back to the raw zone
    (docs/decisions.md, 50).

    Incremental: a run triages again only the groups (rows sharing a key) with a
    row in a new or purged batch (macros/staging/incremental.sql).
-#}
{%- set group_keys = {'event_key': normalise_key('raw_rows.event_id')} %}
{%- set pseudonymised_keys = {'event_key': 'web_event_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('web', 'events'), group_keys, pseudonymised_keys) }},

normalised as {{ inline_cte() }} (

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
        {{ triage_fingerprint(['event_id', 'anonymous_id', 'customer_id', 'event_type', 'event_at',
            'received_at', 'page_url', 'referrer_url', 'ip_address', 'user_agent', 'product_sku',
            'search_query', 'properties']) }} as _row_fingerprint
    from triage_rows

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

),

events as (

    select * from triaged

),

-- HMAC costs four SHA-256 blocks per value: pseudonymise each distinct
-- identifier once and join back (a cookie has tens of events). The distinct
-- values are read from the raw rows (`source`: a column scan), not from the
-- triaged rows, which would then be held in memory for seven readers.
anonymous_keys as (

    select
        anonymous_id,
        {{ pseudonymise("'anonymous_id'", 'anonymous_id') }} as anonymous_key
    from (select distinct {{ normalise_token('anonymous_id') }} as anonymous_id from source) as distinct_ids

),

customer_keys as (

    select
        customer_id,
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key
    from (select distinct {{ normalise_key('customer_id') }} as customer_id from source) as distinct_ids

),

-- The minimisers run once per distinct value (a site has far fewer pages,
-- addresses and browsers than events), joined back by value: in SQL for the
-- common shapes, in Python for the rest (macros/privacy/normalise.sql).
page_urls as (

    {{ per_distinct_value('source', 'page_url', clean_url('page_url'), 'page_url_clean') }}

),

referrer_urls as (

    {%- set referrer_host = "regexp_extract(" ~ clean_url('referrer_url') ~ ", '^[a-z][a-z0-9+.-]*://([^/:?#]+)', 1)" %}
    {{ per_distinct_value('source', 'referrer_url', referrer_host, 'referrer_host') }}

),

ip_addresses as (

    {{ per_distinct_value('source', 'ip_address', truncate_ip('ip_address'), 'ip_prefix') }}

),

user_agents as (

    {{ per_distinct_value('source', 'user_agent', device_class('user_agent'), 'device_class') }}

),

minimised as (

    select
        events.*,
        page_urls.page_url_clean,
        referrer_urls.referrer_host,
        ip_addresses.ip_prefix,
        user_agents.device_class
    from events
    left join page_urls
        on events.page_url is not distinct from page_urls.page_url
    left join referrer_urls
        on events.referrer_url is not distinct from referrer_urls.referrer_url
    left join ip_addresses
        on events.ip_address is not distinct from ip_addresses.ip_address
    left join user_agents
        on events.user_agent is not distinct from user_agents.user_agent

),

final as (

    select
        events._batch_id,
        events._loaded_at,
        events.row_status,
        events.reject_reason,
        {{ pseudonymise("'web_event_id'", 'events.event_id') }} as event_key,
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
            'invalid_properties_json': 'events.properties is not null and not ' ~ json_is_valid('events.properties'),
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
{{ triage_scope_markers(group_keys) }}
