{#- Every raw delivery-log row with its triage status; the recipient is pseudonymised. -#}
with message_events as (

    select * from {{ ref('base_messaging__message_events') }}

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        message_event_id,
        message_id,
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key,
        recipient_type,
        {{ pseudonymise('recipient_type', 'recipient_normalised') }} as recipient_key,
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
