{#- Messaging delivery log, one row per message event (message_event_key). -#}
with triaged as (

    select * from {{ ref('stg_messaging__message_events_triaged') }}

),

final as (

    select
        message_event_key,
        customer_key,
        recipient_type,
        recipient_key,
        channel,
        campaign_id,
        event_type,
        event_at,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
