{#-
    Names of the current CRM record version, sealed, keyed by the customer's
    pseudonym: needed only to answer subject access requests. Names never
    leave staging otherwise.
-#}
with customers as (

    select * from {{ ref('base_crm__customers') }}

),

current_versions as (

    select
        customer_id,
        first_name_normalised,
        last_name_normalised,
        middle_name_normalised
    from customers
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
