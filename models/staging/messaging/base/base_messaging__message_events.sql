{{ config(materialized='ephemeral') }}

{#-
    In-flight only (ephemeral): the messaging delivery log typed, normalised and
    triaged. The recipient is an email address, a phone number or a push token,
    by channel; it is normalised as such.
-#}
with source as (

    select * from {{ source('messaging', 'message_events') }}

),

normalised as (

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
        {{ row_fingerprint(['message_event_id', 'message_id', 'customer_id', 'recipient', 'channel',
            'campaign_id', 'event_type', 'event_at']) }} as _row_fingerprint
    from source

),

recipients as (

    select
        *,
        case recipient_type
            when 'email' then {{ normalise_email('recipient') }}
            when 'phone' then {{ normalise_phone('recipient') }}
            when 'push_token' then {{ normalise_token('recipient') }}
        end as recipient_normalised
    from normalised

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

)

select * from triaged
