{#-
    Names of the current CRM record version, sealed, keyed by the customer's
    pseudonym: needed only to answer subject access requests. Names never
    leave staging otherwise.

    In flight (never materialised): every raw CRM row's customer id and names,
    normalised, triaged as stg_crm__customers_triaged triages them (the same
    macros: crm_customers_fingerprint_columns and crm_customers_triage), so the
    row kept here is the row kept there; the names of the kept rows are sealed.

    Incremental (docs/decisions.md, 65): while the CRM export only grows, a run
    triages again the customers with a row in a batch that is new since the
    last run (all their rows, whatever their batch), and replaces their names;
    when a recorded CRM batch lost or changed rows (a purge, an erasure), it
    triages every row and replaces the names, as a full refresh does.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'vault_append'),
    unique_key=['customer_key', 'name_part'],
    post_hook="{{ vault_record_landing_batches(['crm.customers']) }}",
) }}
with
{%- if is_incremental() %}

{{ vault_landing_batches(['crm.customers']) }},

-- the customers a new batch names: every row of theirs is triaged again
vault_scope as (

    select distinct {{ normalise_key('new_rows.customer_id') }} as customer_id
    from {{ vault_landing_rows(source('crm', 'customers')) }} as new_rows
    where {{ normalise_key('new_rows.customer_id') }} is not null

),
{%- endif %}

source as {{ inline_cte() }} (

    select * from {{ source('crm', 'customers') }}
    {%- if is_incremental() %}
    where
        (select is_replaced from vault_replace)
        or {{ normalise_key('customer_id') }} in (select customer_id from vault_scope)
    {%- endif %}

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

normalised as {{ inline_cte() }} (

    select
        {{ normalise_key('source.customer_id') }} as customer_id,
        first_names.first_name_normalised,
        last_names.last_name_normalised,
        middle_names.middle_name_normalised,
        source.created_at,
        source.updated_at,
        source._loaded_at,
        source._batch_id,
        {{ row_fingerprint(crm_customers_fingerprint_columns('source')) }} as _row_fingerprint
    from source
    left join first_names
        on source.first_name is not distinct from first_names.first_name
    left join last_names
        on source.last_name is not distinct from last_names.last_name
    left join middle_names
        on source.middle_name is not distinct from middle_names.middle_name

),

triaged as (

    {{ crm_customers_triage('normalised') }}

),

current_versions as (

    select
        customer_id,
        first_name_normalised,
        last_name_normalised,
        middle_name_normalised
    from triaged
    where row_status = 'kept'

),

names as (

    select
        customer_id,
        'first_name' as name_part,
        first_name_normalised as name_value
    from current_versions
    union all
    select
        customer_id,
        'last_name' as name_part,
        last_name_normalised as name_value
    from current_versions
    union all
    select
        customer_id,
        'middle_name' as name_part,
        middle_name_normalised as name_value
    from current_versions

),

pseudonymised as (

    select
        {{ pseudonymise("'customer_id'", 'customer_id') }} as customer_key,
        name_part,
        name_value
    from names
    where name_value is not null

),

final as (

    -- Bound to the row (table, customer key, name part, key version); a random
    -- nonce per row, so two customers with one name do not share a ciphertext.
    select
        customer_key,
        name_part,
        {{ vault_seal("'vault_customer_names'", 'customer_key', 'name_part', 'name_value') }} as sealed_value,
        {{ key_version() }} as key_version
    from pseudonymised

)

select * from final
{{ vault_scope_markers('name_part', 'customer_key', pseudonymise("'customer_id'", 'customer_id'), 'vault_scope') }}
