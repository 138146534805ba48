{#-
    How every raw row was accounted for, per source table and load batch:
    raw = kept + duplicate + superseded + quarantined (tested against the raw
    zone by the accounts_for_every_raw_row test on each triaged model).
-#}
with unioned as (

    select
        'crm.customers' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_crm__customers_triaged') }}
    union all
    select
        'web.events' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_web__events_triaged') }}
    union all
    select
        'shop.orders' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_shop__orders_triaged') }}
    union all
    select
        'shop.order_items' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_shop__order_items_triaged') }}
    union all
    select
        'messaging.message_events' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_messaging__message_events_triaged') }}
    union all
    select
        'privacy.consent_events' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_privacy__consent_events_triaged') }}
    union all
    select
        'privacy.subject_requests' as source_table,
        _batch_id,
        row_status
    from {{ ref('stg_privacy__subject_requests_triaged') }}

),

final as (

    select
        source_table,
        _batch_id,
        count(*) as raw_rows,
        count(*) filter (where row_status = 'kept') as kept_rows,
        count(*) filter (where row_status = 'duplicate') as duplicate_rows,
        count(*) filter (where row_status = 'superseded') as superseded_rows,
        count(*) filter (where row_status = 'quarantined') as quarantined_rows
    from unioned
    group by source_table, _batch_id

)

select * from final
