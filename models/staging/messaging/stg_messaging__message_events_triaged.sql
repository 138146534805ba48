{#-
    Every raw delivery-log row with its triage status; the recipient is pseudonymised.

    In flight, before pseudonymisation: the messaging delivery log typed, normalised and
    triaged. The recipient is an email address, a phone number or a push token,
    by channel; it is normalised as such.

    The raw ids stay in flight: the staged message_event_key is the event id's
    keyed pseudonym (id type message_event_id); the message id, which nothing
    downstream reads, is dropped (docs/decisions.md, 50).

    Incremental: a run triages again only the groups (rows sharing a key) with a
    row in a new or purged batch (macros/staging/incremental.sql).
-#}
{%- set group_keys = {'message_event_key': normalise_key('raw_rows.message_event_id')} %}
{%- set pseudonymised_keys = {'message_event_key': 'message_event_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('messaging', 'message_events'), group_keys, pseudonymised_keys) }},

normalised as {{ inline_cte() }} (

    select
        {{ normalise_key('message_event_id') }} as message_event_id,
        {{ normalise_key('message_id') }} as message_id,
        {{ normalise_key('customer_id') }} as customer_id,
        lower(trim(channel)) as channel,
        {{ recipient_type('channel') }} as recipient_type,
        recipient,
        nullif(trim(campaign_id), '') as campaign_id,
        lower(trim(event_type)) as event_type,
        event_at,
        _loaded_at,
        _batch_id,
        {{ triage_fingerprint(['message_event_id', 'message_id', 'customer_id', 'recipient', 'channel',
            'campaign_id', 'event_type', 'event_at']) }} as _row_fingerprint
    from triage_rows

),

-- Normalised and pseudonymised once per distinct recipient (the normalisers run
-- in Python; a recipient gets many messages), joined back by value. The distinct
-- values are read from the raw rows (`source`: a column scan), not from
-- `normalised`, which would count each row's triage group once more
-- (docs/decisions.md, 72).
distinct_recipients as (

    select
        recipient_type,
        recipient,
        recipient_normalised,
        {{ pseudonymise('recipient_type', 'recipient_normalised') }} as recipient_key
    from (
        select
            recipient_type,
            recipient,
            case recipient_type
                when 'email' then {{ normalise_email('recipient') }}
                when 'phone' then {{ normalise_phone('recipient') }}
                when 'push_token' then {{ normalise_token('recipient') }}
            end as recipient_normalised
        from (
            select distinct
                {{ recipient_type('channel') }} as recipient_type,
                recipient
            from source
        ) as distinct_values
    ) as normalised_recipients

),

customer_keys as (

    select
        customer_id,
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key
    from (select distinct {{ normalise_key('customer_id') }} as customer_id from source) as distinct_ids

),

recipients as {{ inline_cte() }} (

    select
        normalised.*,
        distinct_recipients.recipient_normalised,
        distinct_recipients.recipient_key,
        customer_keys.customer_key
    from normalised
    left join distinct_recipients
        on normalised.recipient_type is not distinct from distinct_recipients.recipient_type
            and normalised.recipient is not distinct from distinct_recipients.recipient
    left join customer_keys
        on normalised.customer_id is not distinct from customer_keys.customer_id

),

triaged as (

    {{ triage(
        from_cte='recipients',
        reject_reason="case
            when message_event_id is null then 'missing_key'
            when event_at is null then 'missing_timestamp'
            when channel is null or channel not in (" ~ accepted_values_sql('message_channels') ~ ") then 'unknown_channel'
            when event_type is null or event_type not in (" ~ accepted_values_sql('message_event_types') ~ ") then 'unknown_event_type'
            when customer_id is null and recipient_normalised is null then 'no_usable_recipient'
        end",
        copy_columns=['message_event_id'],
        key_columns=['message_event_id'],
        version_order='event_at'
    ) }}

),

message_events as (

    select * from triaged

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        {{ pseudonymise("'message_event_id'", 'message_event_id') }} as message_event_key,
        customer_key,
        recipient_type,
        recipient_key,
        channel,
        campaign_id,
        event_type,
        event_at,
        {{ issue_list({
            'invalid_recipient': "nullif(trim(recipient), '') is not null and recipient_normalised is null",
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from message_events

)

select * from final
{{ triage_scope_markers(group_keys) }}
