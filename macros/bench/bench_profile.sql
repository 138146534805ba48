{#-
    The benchmark's profiles (scripts/bench_build.py): each statement is one
    `create table as` of a heavy model's select, run once under `explain
    (analyze, format json)` on the build's own connection (the stage's target,
    DuckDB settings and registered functions), then dropped. Of DuckDB's plan
    only these are kept, operator by operator: its type, join type, the table
    it scans, its join conditions (text of the model's SQL), rows out and
    seconds. Nothing else of the plan leaves this macro: a plan also holds
    values of the data (a filter DuckDB derives from a join's build side holds
    its smallest and largest key, which in the privacy stage may be a raw
    identifier). One line per statement is logged as `cdp_bench_profile {json}`.
    Run only by the benchmark (dbt run-operation bench_profile), never by a build.
-#}
{% macro bench_profile(statements, schema='cdp_bench_floors') -%}
    {{ return(adapter.dispatch('bench_profile', 'cdp')(statements, schema)) }}
{%- endmacro %}

{% macro default__bench_profile(statements, schema) -%}
    {{ exceptions.raise_compiler_error("cdp: macro bench_profile has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__bench_profile (the DuckDB version is "
        ~ "duckdb__bench_profile in macros/bench/bench_profile.sql)") }}
{%- endmacro %}

{% macro duckdb__bench_profile(statements, schema) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- do adapter.commit() -%}
    {%- for statement in statements -%}
        {%- set relation = schema ~ '.profile_' ~ loop.index -%}
        {%- do run_query('drop table if exists ' ~ relation) -%}
        {%- do adapter.commit() -%}
        {%- set started = modules.datetime.datetime.now() -%}
        {%- set plan = run_query(
            'explain (analyze, format json) create table ' ~ relation ~ ' as ' ~ statement['select']) -%}
        {%- do adapter.commit() -%}
        {%- set seconds = (modules.datetime.datetime.now() - started).total_seconds() -%}
        {%- do run_query('drop table ' ~ relation) -%}
        {%- do adapter.commit() -%}
        {%- set operators = [] -%}
        {%- for root in fromjson(plan.columns[1].values()[0])['operator'] -%}
            {%- do bench_profile_operators(root, 0, operators) -%}
        {%- endfor -%}
        {%- do log('cdp_bench_profile ' ~ tojson({
            'name': statement['name'],
            'seconds': seconds,
            'operators': operators,
        }), info=True) -%}
    {%- endfor -%}
    {%- do run_query('drop schema if exists ' ~ schema) -%}
    {%- do adapter.commit() -%}
{%- endmacro %}

{#- One operator of DuckDB's JSON plan and those under it, depth first, into `out`: only the
    fields named here (see bench_profile for why). -#}
{% macro bench_profile_operators(node, depth, out) -%}
    {%- set info = node.get('extra_info') or {} -%}
    {%- set conditions = info.get('Conditions') or '' -%}
    {%- if conditions is not string -%}
        {%- set conditions = conditions | join(', ') -%}
    {%- endif -%}
    {%- do out.append({
        'depth': depth,
        'type': node.get('type') | string,
        'join': (info.get('Join Type') or '') | string,
        'table': (info.get('Table') or '') | string,
        'conditions': conditions | string,
        'rows': node.get('intermediate_rows') | int,
        'seconds': node.get('timing') | float,
    }) -%}
    {%- for child in node.get('children') or [] -%}
        {%- do bench_profile_operators(child, depth + 1, out) -%}
    {%- endfor -%}
{%- endmacro %}
