{#- Order lines, one row per (order_key, line_number). -#}
with triaged as (

    select * from {{ ref('stg_shop__order_items_triaged') }}

),

final as (

    select
        order_key,
        line_number,
        product_sku,
        product_name,
        category,
        quantity,
        unit_price,
        line_amount,
        data_issues,
        _batch_id,
        _loaded_at
    from triaged
    where row_status = 'kept'

)

select * from final
