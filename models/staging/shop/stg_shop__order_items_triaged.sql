{#-
    Every raw order line with its triage status. A line re-delivered (same
    order_id and line_number) keeps the latest load.

    The raw order id stays in flight: order_key is its keyed pseudonym (id type
    order_id), the same as stg_shop__orders_triaged.order_key (docs/decisions.md, 50).

    Incremental: a run triages again only the lines (rows sharing order_id and
    line_number) with a row in a new or purged batch (macros/staging/incremental.sql).
-#}
{%- set group_keys = {'order_key': normalise_key('raw_rows.order_id'), 'line_number': 'raw_rows.line_number'} %}
{%- set pseudonymised_keys = {'order_key': 'order_id'} %}
{{ config(materialized='incremental', unique_key=group_keys.keys() | list) }}
with

{{ triage_source(source('shop', 'order_items'), group_keys, pseudonymised_keys) }},

typed as {{ inline_cte() }} (

    select
        {{ normalise_key('order_id') }} as order_id,
        line_number,
        nullif(trim(product_sku), '') as product_sku,
        nullif(trim(product_name), '') as product_name,
        nullif(lower(trim(category)), '') as category,
        quantity,
        unit_price,
        _loaded_at,
        _batch_id,
        {{ triage_fingerprint(['order_id', 'line_number', 'product_sku', 'product_name', 'category',
            'quantity', 'unit_price']) }} as _row_fingerprint
    from triage_rows

),

triaged as (

    {{ triage(
        from_cte='typed',
        reject_reason="case
            when order_id is null or line_number is null then 'missing_key'
            when quantity is null or quantity = 0 then 'invalid_quantity'
        end",
        copy_columns=['_row_fingerprint'],
        key_columns=['order_id', 'line_number'],
        version_order='_loaded_at desc'
    ) }}

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        reject_reason,
        {{ pseudonymise("'order_id'", 'order_id') }} as order_key,
        line_number,
        product_sku,
        product_name,
        category,
        quantity,
        unit_price,
        quantity * unit_price as line_amount,
        {{ issue_list({
            'missing_price': 'unit_price is null',
            'negative_price': 'unit_price < 0',
            'negative_quantity': 'quantity < 0',
            'missing_sku': 'product_sku is null',
        }) }} as data_issues
    from triaged

)

select * from final
{{ triage_scope_markers(group_keys) }}
