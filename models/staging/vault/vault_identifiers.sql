{#-
    The re-identification map: every identifier pseudonym the warehouse holds,
    with the identifier sealed (AES-256-GCM, key derived from the master secret
    in Python). Which landing columns hold identifiers is the sources'
    metadata (macros/sources). Written into the vault database file, apart from the
    pseudonymised data; read only by the privacy officer's tool (python -m
    cdp.vault), which logs every lookup. Identifiers are read straight from the
    raw zone and normalised with the same macros as staging, so every pseudonym
    staging produces resolves here, except the subject of a subject request:
    a request names a person the data holds (whose identifiers are sealed
    from that data) and never adds an entry of its own, so a mistyped or
    unknown subject is not sealed (decision 51); a rectification's new
    e-mail or phone is.

    Incremental (docs/decisions.md, 65): every entry comes from one raw row
    alone, so while the landing zone only grows, a run reads the batches that
    are new since the last run (vault_landing_batches), and pseudonymises and
    seals only the identifiers the vault does not hold yet. When a batch
    recorded after the last run lost or changed rows (a purge or an erasure),
    an identifier may have left the landing zone: the run reads every batch
    and replaces the vault (vault_replace), as a full refresh does.
-#}
-- depends_on: {{ ref('channels') }}
{{ config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'vault_append'),
    unique_key=['pseudonym', 'id_type'],
    post_hook="{{ vault_record_landing_batches() }}",
) }}
{%- set identifier_columns = landing_identifier_columns() %}
{%- set recipient_columns = landing_columns_typed_by('identifier_type_by_channel') %}
{%- set subject_columns = landing_columns_typed_by('identifier_type_column') %}
with
{%- if is_incremental() %}

{{ vault_landing_batches() }},
{%- endif %}

subject_requests as (

    select * from {{ vault_landing_rows(source('privacy', 'subject_requests')) }}

),

-- Every landing column of one identifier type (the sources' meta: identifier_type).
-- The normalisers run in Python: each sees every distinct raw value once.
raw_identifiers as (

    {%- for node, column, id_type in identifier_columns %}
    {% if not loop.first %}union{% endif %}
    select distinct
        '{{ id_type }}' as id_type,
        {{ normalise_as(id_type, column) }} as id_value
    from (select distinct {{ column }} from {{ vault_landing_rows(landing_relation(node)) }}) as distinct_values
    {%- else %}
    select
        cast(null as {{ text_type() }}) as id_type,
        cast(null as {{ text_type() }}) as id_value
    where false
    {%- endfor %}

),

-- Recipients typed by the channel they were sent on (meta: identifier_type_by_channel).
recipients as (

    {%- for node, column, channel in recipient_columns %}
    {% if not loop.first %}union{% endif %}
    select distinct
        {{ recipient_type(channel) }} as id_type,
        {{ column }} as recipient
    from {{ vault_landing_rows(landing_relation(node)) }}
    {%- else %}
    select
        cast(null as {{ text_type() }}) as id_type,
        cast(null as {{ text_type() }}) as recipient
    where false
    {%- endfor %}

),

-- Subjects typed by a column of their row (meta: identifier_type_column).
subjects as (

    {%- for node, column, type_column in subject_columns %}
    {% if not loop.first %}union{% endif %}
    select distinct
        {{ clean_id_type(type_column) }} as id_type,
        {{ column }} as subject_id
    from {{ vault_landing_rows(landing_relation(node)) }}
    {%- else %}
    select
        cast(null as {{ text_type() }}) as id_type,
        cast(null as {{ text_type() }}) as subject_id
    where false
    {%- endfor %}

),

rectified_values as (

    -- CASE, not WHERE: DuckDB may evaluate a projection before a filter, and
    -- the JSON functions raise on malformed text.
    select distinct
        case
            when {{ json_is_valid('details') }}
                then lower(trim({{ json_extract_text('details', '$.field') }}))
        end as id_type,
        case
            when {{ json_is_valid('details') }}
                then {{ json_extract_text('details', '$.value') }}
        end as new_value
    from subject_requests
    where lower(trim(request_type)) = 'rectification'

),

-- MATERIALIZED: otherwise DuckDB pushes the not-null filter below into each branch and
-- runs every normaliser once for the filter and again for the value (3x the Python calls).
all_identifiers as {{ materialized_cte() }} (

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

new_identifiers as (

    select *
    from pseudonymised
    {%- if is_incremental() %}
    -- only what the vault does not hold yet (everything when it is replaced)
    where
        (select is_replaced from vault_replace)
        or not exists (
            select 1
            from {{ incremental_prior() }} as known
            where known.pseudonym = pseudonymised.pseudonym and known.id_type = pseudonymised.id_type
        )
    {%- endif %}

),

final as (

    -- Each sealed value is bound to its row (table, pseudonym, id type, key version).
    select
        pseudonym,
        id_type,
        {{ vault_seal("'vault_identifiers'", 'pseudonym', 'id_type', 'id_value') }} as sealed_value,
        {{ key_version() }} as key_version
    from new_identifiers

)

select * from final
{{ vault_scope_markers('id_type', 'pseudonym') }}
