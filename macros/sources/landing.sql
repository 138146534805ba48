{#-
    The landing zone as the sources' metadata declares it (cdp.sources says the
    same in Python; docs/decisions.md, 57). dbt's graph is filled only when a
    model runs (it is empty while dbt parses), so these macros return nothing at
    parse time: a model built from them declares no source or ref of its own, and
    its stage runs after every model it reads (macros/stages, cdp.stages).
-#}

{#- Every landing table (a source whose meta says landing: true), in a stable order. -#}
{% macro landing_sources() -%}
    {{ return(adapter.dispatch('landing_sources', 'cdp')()) }}
{%- endmacro %}

{% macro default__landing_sources() -%}
    {%- set found = [] -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() | sort(attribute='unique_id') -%}
            {%- if node.meta.get('landing') -%}
                {%- do found.append(node) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}

{#- The columns of a landing table in their declared order (meta from column config). -#}
{% macro landing_columns(node) -%}
    {{ return(adapter.dispatch('landing_columns', 'cdp')(node)) }}
{%- endmacro %}

{% macro default__landing_columns(node) -%}
    {%- set found = [] -%}
    {%- for column in node.columns.values() -%}
        {%- do found.append({
            'name': column.name,
            'meta': column.get('meta') or (column.get('config') or {}).get('meta') or {},
        }) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- The relation of a landing table (the source() a model would call). -#}
{% macro landing_relation(node) -%}
    {{ return(adapter.dispatch('landing_relation', 'cdp')(node)) }}
{%- endmacro %}

{% macro default__landing_relation(node) -%}
    {{ return(source(node.source_name, node.name)) }}
{%- endmacro %}

{#-
    (source node, column, identifier type) of every landing column holding one
    fixed identifier type (meta identifier_type), unless its meta says vault: false.
-#}
{% macro landing_identifier_columns() -%}
    {{ return(adapter.dispatch('landing_identifier_columns', 'cdp')()) }}
{%- endmacro %}

{% macro default__landing_identifier_columns() -%}
    {%- set found = [] -%}
    {%- for node in landing_sources() -%}
        {%- for column in landing_columns(node) -%}
            {%- if column.meta.get('identifier_type') and column.meta.get('vault', true) -%}
                {%- do found.append((node, column.name, column.meta['identifier_type'])) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- (source node, column, other column) for a column meta key naming another column. -#}
{% macro landing_columns_typed_by(key) -%}
    {{ return(adapter.dispatch('landing_columns_typed_by', 'cdp')(key)) }}
{%- endmacro %}

{% macro default__landing_columns_typed_by(key) -%}
    {%- set found = [] -%}
    {%- for node in landing_sources() -%}
        {%- for column in landing_columns(node) -%}
            {%- if column.meta.get(key) and column.meta.get('vault', true) -%}
                {%- do found.append((node, column.name, column.meta[key])) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- A value of a fixed identifier type, normalised as staging normalises it. -#}
{% macro normalise_as(id_type, value) -%}
    {{ return(adapter.dispatch('normalise_as', 'cdp')(id_type, value)) }}
{%- endmacro %}

{% macro default__normalise_as(id_type, value) -%}
    {%- if id_type == 'customer_id' -%}{{ normalise_key(value) }}
    {%- elif id_type == 'email' -%}{{ normalise_email(value) }}
    {%- elif id_type == 'phone' -%}{{ normalise_phone(value) }}
    {%- elif id_type == 'loyalty_card' -%}{{ normalise_card(value) }}
    {%- elif id_type in ('anonymous_id', 'push_token') -%}{{ normalise_token(value) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("cdp: unknown identifier_type " ~ id_type
            ~ " in the sources' metadata (cdp.sources.IDENTIFIER_TYPES lists the known ones)") }}
    {%- endif -%}
{%- endmacro %}

{#-
    The staging models that triage a landing table: every model named
    stg_<source>__<table>_triaged (the staging recipe's name) with the landing
    source its name gives. (model node, source node) pairs, in a stable order.
-#}
{% macro triaged_models() -%}
    {{ return(adapter.dispatch('triaged_models', 'cdp')()) }}
{%- endmacro %}

{% macro default__triaged_models() -%}
    {%- set found = [] -%}
    {%- if execute -%}
        {%- set landing = {} -%}
        {%- for node in landing_sources() -%}
            {%- do landing.update({node.source_name ~ '__' ~ node.name: node}) -%}
        {%- endfor -%}
        {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
            {%- if node.resource_type == 'model' and node.name.startswith('stg_') and node.name.endswith('_triaged') -%}
                {%- set named = node.name[4:-8] -%}
                {%- if named in landing -%}
                    {%- do found.append((node, landing[named])) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}

{#- The relation a model node builds (a model read without ref: see the note above). -#}
{% macro node_relation(node) -%}
    {{ return(adapter.dispatch('node_relation', 'cdp')(node)) }}
{%- endmacro %}

{% macro default__node_relation(node) -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}
