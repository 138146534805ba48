{#-
    Every raw order row with its triage status. Checkout contacts are
    pseudonymised; the delivery address never leaves staging, the delivery
    city is generalised to a region. The order id is staged as its keyed
    pseudonym (order_key, id type order_id), as on the order lines
    (docs/decisions.md, 50).
-#}
with orders as (

    select * from {{ ref('base_shop__orders') }}

),

regions as (

    select * from {{ ref('city_regions') }}

),

final as (

    select
        orders._batch_id,
        orders._loaded_at,
        orders.row_status,
        orders.reject_reason,
        {{ pseudonymise("'order_id'", 'orders.order_id') }} as order_key,
        {{ pseudonymise("'customer_id'", 'orders.customer_id') }} as customer_key,
        {{ pseudonymise("'email'", 'orders.email_normalised') }} as email_key,
        {{ pseudonymise("'phone'", 'orders.phone_normalised') }} as phone_key,
        orders.customer_id is null as is_guest_checkout,
        orders.ordered_at,
        orders.status,
        orders.total_amount,
        case when orders.currency in ({{ accepted_values_sql('currencies') }}) then orders.currency end as currency,
        case
            when orders.channel in ({{ accepted_values_sql('order_channels') }}) then orders.channel
            else 'other'
        end as channel,
        orders.store_id,
        coalesce(
            regions.region,
            case when orders.delivery_city_normalised is not null then 'other' end
        ) as delivery_region,
        case
            when orders.payment_method in ({{ accepted_values_sql('payment_methods') }}) then orders.payment_method
            when orders.payment_method is not null then 'other'
        end as payment_method,
        orders.updated_at,
        {{ issue_list({
            'invalid_email': 'orders.has_email_raw and orders.email_normalised is null',
            'invalid_phone': 'orders.has_phone_raw and orders.phone_normalised is null',
            'missing_amount': 'orders.total_amount is null',
            'negative_amount': 'orders.total_amount < 0',
            'unknown_currency': "orders.currency is null or orders.currency not in (" ~ accepted_values_sql('currencies') ~ ")",
            'unknown_channel': "orders.channel is null or orders.channel not in (" ~ accepted_values_sql('order_channels') ~ ")",
            'unknown_payment_method': "orders.payment_method is not null and orders.payment_method not in (" ~ accepted_values_sql('payment_methods') ~ ")",
        }) }} as data_issues,
        {{ key_version() }} as key_version
    from orders
    left join regions
        on orders.delivery_city_normalised = regions.city_normalised

)

select * from final
