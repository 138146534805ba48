{#- Clickstream events, one row per event (event_key), pseudonymised and minimised. -#}
with triaged as (

    select * from {{ ref('stg_web__events_triaged') }}

),

final as (

    select
        event_key,
        anonymous_key,
        customer_key,
        event_type,
        event_at,
        received_at,
        page_url_clean,
        referrer_host,
        ip_prefix,
        device_class,
        product_sku,
        has_search_query,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
