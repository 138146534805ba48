{#-
    Every quarantined raw row of every source table, with the reason. A row is
    located by its batch and its key's pseudonym, as staged (a raw source id
    would join back to the raw row's personal data: docs/decisions.md, 50); raw
    values stay in the raw zone.
-#}
with customers as (

    select
        'crm.customers' as source_table,
        _batch_id,
        _loaded_at,
        customer_key as record_locator,
        reject_reason
    from {{ ref('stg_crm__customers_triaged') }}
    where row_status = 'quarantined'

),

web_events as (

    select
        'web.events' as source_table,
        _batch_id,
        _loaded_at,
        event_key as record_locator,
        reject_reason
    from {{ ref('stg_web__events_triaged') }}
    where row_status = 'quarantined'

),

orders as (

    select
        'shop.orders' as source_table,
        _batch_id,
        _loaded_at,
        order_key as record_locator,
        reject_reason
    from {{ ref('stg_shop__orders_triaged') }}
    where row_status = 'quarantined'

),

order_items as (

    select
        'shop.order_items' as source_table,
        _batch_id,
        _loaded_at,
        order_key || '#' || line_number as record_locator,
        reject_reason
    from {{ ref('stg_shop__order_items_triaged') }}
    where row_status = 'quarantined'

),

message_events as (

    select
        'messaging.message_events' as source_table,
        _batch_id,
        _loaded_at,
        message_event_key as record_locator,
        reject_reason
    from {{ ref('stg_messaging__message_events_triaged') }}
    where row_status = 'quarantined'

),

consent_events as (

    select
        'privacy.consent_events' as source_table,
        _batch_id,
        _loaded_at,
        consent_event_key as record_locator,
        reject_reason
    from {{ ref('stg_privacy__consent_events_triaged') }}
    where row_status = 'quarantined'

),

subject_requests as (

    select
        'privacy.subject_requests' as source_table,
        _batch_id,
        _loaded_at,
        request_key as record_locator,
        reject_reason
    from {{ ref('stg_privacy__subject_requests_triaged') }}
    where row_status = 'quarantined'

),

final as (

    select * from customers
    union all
    select * from web_events
    union all
    select * from orders
    union all
    select * from order_items
    union all
    select * from message_events
    union all
    select * from consent_events
    union all
    select * from subject_requests

)

select * from final
