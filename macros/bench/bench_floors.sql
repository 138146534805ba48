{#-
    The floors of scripts/bench_build.py: each floor is one `create table as`
    timed on the build's own connection (same target, DuckDB settings and
    registered functions as the stage that builds the model), best of `repeat`
    runs, then counted and dropped. `floors` is a list of {name, select}; the select text holds
    function names and column names only, never a key (the keyed functions
    hold their keys in the plugin's Python closures). One line per floor is
    logged as `cdp_bench_floor {json}`, and the connection's DuckDB settings
    once as `cdp_bench_settings {json}`. Run only by the benchmark (dbt
    run-operation bench_floors), never by a build.
-#}
{% macro bench_floors(floors, schema='cdp_bench_floors', repeat=2) -%}
    {{ return(adapter.dispatch('bench_floors', 'cdp')(floors, schema, repeat)) }}
{%- endmacro %}

{% macro default__bench_floors(floors, schema, repeat) -%}
    {{ exceptions.raise_compiler_error("cdp: macro bench_floors has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__bench_floors (the DuckDB version is "
        ~ "duckdb__bench_floors in macros/bench/bench_floors.sql)") }}
{%- endmacro %}

{#- DuckDB: the settings logged are DuckDB's own (memory_limit, threads). -#}
{% macro duckdb__bench_floors(floors, schema, repeat) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- do adapter.commit() -%}
    {%- set settings = run_query(
        "select current_setting('memory_limit'), current_setting('threads')") -%}
    {%- do log('cdp_bench_settings ' ~ tojson({
        'memory_limit': settings.columns[0].values()[0] | string,
        'threads': settings.columns[1].values()[0] | int,
        'target': target.name,
    }), info=True) -%}
    {%- for floor in floors -%}
        {%- set relation = schema ~ '.floor_' ~ loop.index -%}
        {%- set times = [] -%}
        {%- for _ in range(repeat) -%}
            {%- do run_query('drop table if exists ' ~ relation) -%}
            {%- do adapter.commit() -%}
            {%- set started = modules.datetime.datetime.now() -%}
            {%- do run_query('create table ' ~ relation ~ ' as ' ~ floor['select']) -%}
            {%- do adapter.commit() -%}
            {%- do times.append((modules.datetime.datetime.now() - started).total_seconds()) -%}
        {%- endfor -%}
        {%- set counted = run_query('select count(*) from ' ~ relation) -%}
        {%- set described = run_query(
            "select count(*) from information_schema.columns where table_schema = '"
            ~ schema ~ "' and table_name = 'floor_" ~ loop.index ~ "'") -%}
        {%- do run_query('drop table ' ~ relation) -%}
        {%- do adapter.commit() -%}
        {%- do log('cdp_bench_floor ' ~ tojson({
            'name': floor['name'],
            'seconds': times | min,
            'rows': counted.columns[0].values()[0] | int,
            'columns': described.columns[0].values()[0] | int,
        }), info=True) -%}
    {%- endfor -%}
    {%- do run_query('drop schema if exists ' ~ schema) -%}
    {%- do adapter.commit() -%}
{%- endmacro %}
