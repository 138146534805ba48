{{ config(materialized='ephemeral') }}

{#-
    The vault's in-flight read of CRM names (ephemeral: the plaintext exists only
    inside vault_customer_names' query, which seals the names of the kept rows).
    Not a staging step: stg_crm__customers_triaged reads the source itself and
    never holds a name (docs/decisions.md, 56).

    Every raw CRM row's customer id and names, normalised, with its triage status.
    The triage is stg_crm__customers_triaged's (same fingerprint, key and version
    order), so the row kept here is the row kept there.
-#}
with source as (

    select * from {{ source('crm', 'customers') }}

),

-- The normaliser runs in Python: once per distinct name, joined back by value.
first_names as (

    {{ per_distinct_value('source', 'first_name', normalise_name('first_name'), 'first_name_normalised') }}

),

last_names as (

    {{ per_distinct_value('source', 'last_name', normalise_name('last_name'), 'last_name_normalised') }}

),

middle_names as (

    {{ per_distinct_value('source', 'middle_name', normalise_name('middle_name'), 'middle_name_normalised') }}

),

normalised as (

    select
        {{ normalise_key('source.customer_id') }} as customer_id,
        first_names.first_name_normalised,
        last_names.last_name_normalised,
        middle_names.middle_name_normalised,
        source.created_at,
        source.updated_at,
        source._loaded_at,
        source._batch_id,
        {{ row_fingerprint(['source.customer_id', 'source.email', 'source.phone', 'source.first_name',
            'source.last_name', 'source.middle_name', 'source.birth_date', 'source.gender', 'source.city',
            'source.postal_code', 'source.address', 'source.country_code', 'source.passport_number',
            'source.loyalty_card_number', 'source.created_at', 'source.updated_at',
            'source.is_deleted']) }} as _row_fingerprint
    from source
    left join first_names
        on source.first_name is not distinct from first_names.first_name
    left join last_names
        on source.last_name is not distinct from last_names.last_name
    left join middle_names
        on source.middle_name is not distinct from middle_names.middle_name

),

triaged as (

    {{ triage(
        from_cte='normalised',
        reject_reason="case when customer_id is null then 'missing_key' end",
        copy_columns=['_row_fingerprint'],
        key_columns=['customer_id'],
        version_order='updated_at desc nulls last, created_at desc nulls last'
    ) }}

),

final as (

    select
        customer_id,
        first_name_normalised,
        last_name_normalised,
        middle_name_normalised,
        row_status
    from triaged

)

select * from final
