{{ config(tags=['privacy']) }}
{#-
    Every model that declares a purpose in its meta (`purpose`, or
    `purpose_column` for a long-format model) carries the consent_presence
    test, and every model that declares a retention time column carries the
    within_retention test: a new purpose-serving or timestamped model cannot
    skip the checks. Reads the project graph.
-#}
{%- set missing = [] -%}
{%- set missing_rows = [] -%}
{%- if execute -%}
    {%- set tested = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.test_metadata -%}
        {%- for parent in node.depends_on.nodes -%}
            {%- do tested.setdefault(parent, []).append(node.test_metadata.name) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.config.materialized != 'ephemeral' -%}
        {%- set meta = {} -%}
        {%- do meta.update(node.meta or {}) -%}
        {%- do meta.update(node.config.meta or {}) -%}
        {%- set tests_here = tested.get(node.unique_id, []) -%}
        {%- if (meta.get('purpose') or meta.get('purpose_column')) and node.fqn[1] == 'marts' and 'consent_presence' not in tests_here -%}
            {%- do missing.append((node.name, 'serves a purpose (meta.purpose or meta.purpose_column) but has no consent_presence test')) -%}
        {%- endif -%}
        {%- if meta.get('retention_time_column') and 'within_retention' not in tests_here -%}
            {%- do missing.append((node.name, 'declares a retention time column but has no within_retention test')) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for model_name, problem in missing -%}
        {%- do missing_rows.append("('" ~ model_name ~ "', '" ~ problem ~ "')") -%}
    {%- endfor -%}
{%- endif %}

with missing as (

    select
        missing_tests.model_name,
        missing_tests.problem
    from (values {{ missing_rows | join(', ') if missing_rows else '(null, null)' }}) as missing_tests (model_name, problem)

),

final as (

    select
        model_name,
        problem
    from missing
    where model_name is not null

)

select * from final
