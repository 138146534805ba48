{#- The current version of every order: one row per order (order_key). -#}
with triaged as (

    select * from {{ ref('stg_shop__orders_triaged') }}

),

final as (

    select
        order_key,
        customer_key,
        email_key,
        phone_key,
        is_guest_checkout,
        ordered_at,
        status,
        total_amount,
        currency,
        channel,
        store_id,
        delivery_region,
        payment_method,
        updated_at,
        data_issues,
        key_version,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
