{#-
    The whole staging of a landing table from its sources' metadata, for a table
    with no rule of its own beyond what the metadata says (docs/decisions.md, 57).
    A model stg_<source>__<table>_triaged.sql holding only

        {{ stage_landing_table('loyalty', 'point_events', key='point_event_id') }}

    stages every raw row with one status (triage: kept, duplicate, superseded by a
    later load of the same key, quarantined for a missing key), and:

      raw_key column            its keyed pseudonym (id type: the column name), as
                                <name>_key (a trailing _id dropped), decision 50
      identifier_type column    normalised as its type, as its keyed pseudonym <name>_key
      free text, other direct   left in the raw zone (minimisation)
      quasi and non-personal    trimmed and kept

    With the metadata, this is enough for the vault, the row accounting and
    quarantine (audit models), the purge's retention and erasure and the access
    export to cover the table (cdp.sources). It is the staging recipe
    (docs/decisions.md, 56) written out from the metadata: triage_source, the
    normalisers once per distinct value (read from `source`), `typed` from
    triage_rows with triage_fingerprint, triage, pseudonyms in `final`,
    triage_scope_markers. Rows are re-triaged in full on every build (a table
    materialisation): give a large table an incremental model of its own with
    the same recipe (macros/staging/incremental.sql).
-#}
{% macro stage_landing_table(source_name, table_name, key) -%}
    {{ return(adapter.dispatch('stage_landing_table', 'cdp')(source_name, table_name, key)) }}
{%- endmacro %}

{% macro default__stage_landing_table(source_name, table_name, key) -%}
    {{ config(materialized='table', meta={'record_locator': staged_key_name(key)}) }}
    {%- set relation = source(source_name, table_name) -%}
    {%- set group_keys = {staged_key_name(key): normalise_key('raw_rows.' ~ key)} -%}
    {%- set pseudonymised_keys = {staged_key_name(key): key} -%}
    {%- set columns = [] -%}
    {%- for node in landing_sources() if node.source_name == source_name and node.name == table_name -%}
        {%- for column in landing_columns(node) if not column.name.startswith('_') -%}
            {%- do columns.append(column) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if execute and not columns -%}
        {{ exceptions.raise_compiler_error("stage_landing_table: " ~ source_name ~ "." ~ table_name
            ~ " is not a landing table with columns in the sources' metadata (meta landing: true)") }}
    {%- endif -%}
    {%- set fingerprinted = [] -%}
    {%- set lookups = [] -%}
    {%- set typed = [] -%}
    {%- set staged = [] -%}
    {%- for column in columns -%}
        {%- set name = column.name -%}
        {%- do fingerprinted.append('source.' ~ name) -%}
        {%- if name == key or column.meta.get('raw_key') -%}
            {%- do typed.append(normalise_key('source.' ~ name) ~ ' as ' ~ name) -%}
            {%- do staged.append(pseudonymise("'" ~ name ~ "'", name) ~ ' as ' ~ staged_key_name(name)) -%}
        {%- elif column.meta.get('identifier_type') -%}
            {#- normalised once per distinct value (the Python normalisers), joined back by value -#}
            {%- do lookups.append((name, normalise_as(column.meta['identifier_type'], name))) -%}
            {%- do typed.append('distinct_' ~ name ~ '.' ~ name ~ '_normalised as ' ~ name) -%}
            {%- do staged.append(pseudonymise("'" ~ column.meta['identifier_type'] ~ "'", name) ~ ' as ' ~ staged_key_name(name)) -%}
        {%- elif column.meta.get('pii') == 'direct' or column.meta.get('free_text') or column.meta.get('identifier_type_column') or column.meta.get('identifier_type_by_channel') -%}
            {#- left in the raw zone -#}
        {%- else -%}
            {%- do typed.append('source.' ~ name ~ ' as ' ~ name) -%}
            {%- do staged.append(name) -%}
        {%- endif -%}
    {%- endfor %}
with

{{ triage_source(relation, group_keys, pseudonymised_keys) }},
{%- for name, expression in lookups %}

distinct_{{ name }} as (

    {{ per_distinct_value('source', name, expression, name ~ '_normalised') }}

),
{%- endfor %}

typed as {{ inline_cte() }} (

    select
        {%- for expression in typed %}
        {{ expression }},
        {%- endfor %}
        source._loaded_at,
        source._batch_id,
        {{ triage_fingerprint(fingerprinted) }} as _row_fingerprint
    from triage_rows as source
    {%- for name, expression in lookups %}
    left join distinct_{{ name }}
        on source.{{ name }} is not distinct from distinct_{{ name }}.{{ name }}
    {%- endfor %}

),

triaged as (

    {{ triage(
        from_cte='typed',
        reject_reason="case when " ~ key ~ " is null then 'missing_key' end",
        copy_columns=['_row_fingerprint'],
        key_columns=[key],
        version_order='_loaded_at desc'
    ) }}

),

final as (

    select
        _batch_id,
        _loaded_at,
        row_status,
        {%- for expression in staged %}
        {{ expression }},
        {%- endfor %}
        reject_reason
    from triaged

)

select * from final
{{ triage_scope_markers(group_keys) }}
{%- endmacro %}

{#- The staged name of a key or identifier column: a trailing _id becomes _key, else _key is added. -#}
{% macro staged_key_name(column) -%}
    {{ return(adapter.dispatch('staged_key_name', 'cdp')(column)) }}
{%- endmacro %}

{% macro default__staged_key_name(column) -%}
    {{ return(column[:-3] ~ '_key' if column.endswith('_id') else column ~ '_key') }}
{%- endmacro %}
