{#-
    The re-identification map: every identifier pseudonym the warehouse holds,
    with the identifier sealed (AES-256-GCM, key derived from the master secret
    in Python). Written into the vault database file, apart from the
    pseudonymised data; read only by the privacy officer's tool (python -m
    cdp.vault), which logs every lookup. Identifiers are read straight from the
    raw zone and normalised with the same macros as staging, so every pseudonym
    staging produces resolves here, except the subject of a subject request:
    a request names a person the data holds (whose identifiers are sealed
    from that data) and never adds an entry of its own, so a mistyped or
    unknown subject is not sealed (decision 51); a rectification's new
    e-mail or phone is.
-#}
with customers as (

    select * from {{ source('crm', 'customers') }}

),

web_events as (

    select * from {{ source('web', 'events') }}

),

orders as (

    select * from {{ source('shop', 'orders') }}

),

message_events as (

    select * from {{ source('messaging', 'message_events') }}

),

consent_events as (

    select * from {{ source('privacy', 'consent_events') }}

),

subject_requests as (

    select * from {{ source('privacy', 'subject_requests') }}

),

-- The normalisers run in Python: each sees every distinct raw value once.
raw_identifiers as (

    select distinct
        'customer_id' as id_type,
        {{ normalise_key('customer_id') }} as id_value
    from (select distinct customer_id from customers) as distinct_values
    union
    select distinct
        'email' as id_type,
        {{ normalise_email('email') }} as id_value
    from (select distinct email from customers) as distinct_values
    union
    select distinct
        'phone' as id_type,
        {{ normalise_phone('phone') }} as id_value
    from (select distinct phone from customers) as distinct_values
    union
    select distinct
        'loyalty_card' as id_type,
        {{ normalise_card('loyalty_card_number') }} as id_value
    from (select distinct loyalty_card_number from customers) as distinct_values
    union
    select distinct
        'anonymous_id' as id_type,
        {{ normalise_token('anonymous_id') }} as id_value
    from (select distinct anonymous_id from web_events) as distinct_values
    union
    select distinct
        'customer_id' as id_type,
        {{ normalise_key('customer_id') }} as id_value
    from (select distinct customer_id from web_events) as distinct_values
    union
    select distinct
        'customer_id' as id_type,
        {{ normalise_key('customer_id') }} as id_value
    from (select distinct customer_id from orders) as distinct_values
    union
    select distinct
        'email' as id_type,
        {{ normalise_email('email') }} as id_value
    from (select distinct email from orders) as distinct_values
    union
    select distinct
        'phone' as id_type,
        {{ normalise_phone('phone') }} as id_value
    from (select distinct phone from orders) as distinct_values
    union
    select distinct
        'customer_id' as id_type,
        {{ normalise_key('customer_id') }} as id_value
    from (select distinct customer_id from message_events) as distinct_values

),

recipients as (

    select distinct
        {{ recipient_type('channel') }} as id_type,
        recipient
    from message_events

),

subjects as (

    select distinct
        {{ clean_id_type('subject_id_type') }} as id_type,
        subject_id
    from consent_events

),

rectified_values as (

    -- CASE, not WHERE: DuckDB may evaluate a projection before a filter, and
    -- the JSON functions raise on malformed text.
    select distinct
        case
            when coalesce(try(json_valid(details)), false)
                then lower(trim(json_extract_string(details, '$.field')))
        end as id_type,
        case
            when coalesce(try(json_valid(details)), false)
                then json_extract_string(details, '$.value')
        end as new_value
    from subject_requests
    where lower(trim(request_type)) = 'rectification'

),

all_identifiers as (

    select
        id_type,
        id_value
    from raw_identifiers
    union
    select
        id_type,
        case id_type
            when 'email' then {{ normalise_email('recipient') }}
            when 'phone' then {{ normalise_phone('recipient') }}
            when 'push_token' then {{ normalise_token('recipient') }}
        end
    from recipients
    union
    select
        id_type,
        {{ normalise_identifier('id_type', 'subject_id') }}
    from subjects
    union
    select
        id_type,
        {{ normalise_identifier('id_type', 'new_value') }}
    from rectified_values
    where id_type in ('email', 'phone')

),

pseudonymised as (

    select
        {{ pseudonymise('id_type', 'id_value') }} as pseudonym,
        id_type,
        id_value
    from all_identifiers
    where id_type is not null and id_value is not null

),

final as (

    -- Each sealed value is bound to its row (table, pseudonym, id type, key version).
    select
        pseudonym,
        id_type,
        {{ vault_seal("'vault_identifiers'", 'pseudonym', 'id_type', 'id_value') }} as sealed_value,
        {{ key_version() }} as key_version
    from pseudonymised

)

select * from final
