{#-
    A model's contract on an engine where dbt cannot enforce it (issue 19). On DuckDB dbt
    checks the built columns' names, order and types against the yml and makes not_null
    constraints part of the table. On Spark, dbt-spark's check casts NULL to each yml type,
    and Spark refuses DuckDB's `varchar` (no length) and `varchar[]`; and dbt-spark applies
    not_null constraints only to Delta tables (`alter table ... set not null`), silently
    nothing on Parquet. So the contracted models turn dbt's check off on Spark and call this
    post-hook, which holds the table just built to the same three promises and drops it when
    one fails (docs/portability.md, "Rights and the profile on Spark").
-#}
{#-
    Called at the top of each model whose contract is enforced (by its yml or its folder in
    dbt_project.yml), as `{{ enforced_contract() }}`: one place says how each engine holds the
    model to it. A config() in the model file, because dbt renders a Jinja value in the yml or
    dbt_project.yml to text, and any text ("False" too) enables the contract.
-#}
{% macro enforced_contract() -%}
    {{ return(adapter.dispatch('enforced_contract', 'cdp')()) }}
{%- endmacro %}

{#- dbt enforces the contract (DuckDB): nothing to change. -#}
{% macro default__enforced_contract() -%}
{%- endmacro %}

{#- Spark: dbt's check off, the post-hook enforce_contract instead. -#}
{% macro spark__enforced_contract() -%}
    {%- do config(contract={'enforced': false}, post_hook="{{ enforce_contract() }}") -%}
{%- endmacro %}

{% macro enforce_contract() -%}
    {{ return(adapter.dispatch('enforce_contract', 'cdp')()) }}
{%- endmacro %}

{#- dbt enforces the contract itself: nothing to add. -#}
{% macro default__enforce_contract() -%}
{%- endmacro %}

{% macro spark__enforce_contract() -%}
    {%- if execute -%}
        {%- set problems = [] -%}
        {%- set wanted = model.columns.values() | list -%}
        {%- set built = adapter.get_columns_in_relation(this) -%}
        {%- set wanted_names = wanted | map(attribute='name') | map('lower') | list -%}
        {%- set built_names = built | map(attribute='name') | map('lower') | list -%}
        {%- if wanted_names != built_names -%}
            {%- do problems.append('the columns are ' ~ built_names | join(', ') ~ ', the contract names '
                ~ wanted_names | join(', ')) -%}
        {%- else -%}
            {%- for column in wanted -%}
                {%- set want = spark_type_name(column['data_type'] or '') -%}
                {%- set have = built[loop.index0].dtype | lower | replace(' ', '') -%}
                {%- if want != have -%}
                    {%- do problems.append(column['name'] ~ ' is ' ~ have ~ ', the contract says ' ~ want) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
        {%- set not_null = [] -%}
        {%- for column in wanted -%}
            {%- for constraint in column['constraints'] or [] -%}
                {%- if constraint['type'] != 'not_null' -%}
                    {%- do problems.append(column['name'] ~ ' has a ' ~ constraint['type'] ~ ' constraint, which is not checked on Spark') -%}
                {%- elif column['name'] not in not_null -%}
                    {%- do not_null.append(column['name']) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for constraint in model.constraints or [] -%}
            {%- if constraint['type'] != 'not_null' -%}
                {%- do problems.append('a ' ~ constraint['type'] ~ ' constraint of the model, which is not checked on Spark') -%}
            {%- else -%}
                {%- for name in constraint['columns'] or [] if name not in not_null -%}
                    {%- do not_null.append(name) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not_null and not problems -%}
            {%- set counts -%}
                select
                {%- for name in not_null %}
                    count_if({{ name }} is null) as {{ name }}{{ ',' if not loop.last }}
                {%- endfor %}
                from {{ this }}
            {%- endset -%}
            {%- set found = run_query(counts).rows[0] -%}
            {%- for name in not_null -%}
                {%- if found[loop.index0] > 0 -%}
                    {%- do problems.append(name ~ ' is NULL in ' ~ found[loop.index0] ~ ' rows (not_null)') -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
        {%- if problems -%}
            {%- do run_query('drop table if exists ' ~ this) -%}
            {{ exceptions.raise_compiler_error("cdp: the contract of " ~ this.identifier ~ " does not hold on Spark: "
                ~ problems | join('; ') ~ "; the table was dropped") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#-
    The Spark spelling of a column type as a contract writes it for DuckDB, spaces dropped
    (`decimal(12, 2)` is `decimal(12,2)`): varchar string, varchar[] array<string>, integer int.
-#}
{% macro spark_type_name(data_type) -%}
    {{ return(adapter.dispatch('spark_type_name', 'cdp')(data_type)) }}
{%- endmacro %}

{% macro default__spark_type_name(data_type) -%}
    {%- set name = data_type | lower | replace(' ', '') -%}
    {%- set names = {'varchar': 'string', 'text': 'string', 'varchar[]': 'array<string>', 'integer': 'int'} -%}
    {{ return(names.get(name, name)) }}
{%- endmacro %}
