{#-
    What the audiences (models/marts/audiences) and the audit views (models/audit) wrote for
    DuckDB alone (issue 19). Each duckdb__ (or default__) version gives the text the models had
    before the port; each spark__ version was checked against it in a Spark 4.3 session and
    DuckDB (docs/portability.md, "The audiences and the audit views on Spark").
-#}

{#-
    A join item: one row per item of the text `value` split at the literal text `delimiter`,
    each row of the left side joined to its items as `alias`.`column`. A NULL `value` gives
    the row no item (it drops out, as in an inner join); an empty one or empty items between,
    before or after delimiters give empty items ('' is one item '').
-#}
{% macro cross_join_split(value, delimiter, alias, column) -%}
    {{ return(adapter.dispatch('cross_join_split', 'cdp')(value, delimiter, alias, column)) }}
{%- endmacro %}

{% macro default__cross_join_split(value, delimiter, alias, column) -%}
    {{ exceptions.raise_compiler_error("cdp: macro cross_join_split has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__cross_join_split (the DuckDB version is "
        ~ "duckdb__cross_join_split in macros/cross_db/audiences.sql)") }}
{%- endmacro %}

{#- DuckDB: unnest(string_split(...)), which splits at the literal text. -#}
{% macro duckdb__cross_join_split(value, delimiter, alias, column) -%}
    cross join unnest(string_split({{ value }}, '{{ delimiter }}')) as {{ alias }} ({{ column }})
{%- endmacro %}

{#-
    Spark: split takes a regex, so the delimiter is escaped (`.` or `|` would otherwise split
    everywhere or nowhere); limit -1 keeps every empty item (Spark 4.3's default does too, but
    a limit of 1 or more would not). explode, not explode_outer: DuckDB's cross join drops a
    row whose list is NULL, as explode does; explode_outer would keep it with a NULL item.
-#}
{% macro spark__cross_join_split(value, delimiter, alias, column) -%}
    cross join lateral explode(split({{ value }}, '{{ modules.re.escape(delimiter) | replace("\\", "\\\\") }}', -1)) as {{ alias }} ({{ column }})
{%- endmacro %}

{#-
    The name a landing table has in the landing zone, `<schema>.<table>` (the audit views'
    source_table), from its source node: the same on every engine. DuckDB holds the raw zone
    as the schemas of the database `raw`; Spark, which has no catalogs, as the databases
    `raw_<schema>` (cdp.spark_stage.raw_database), so its source schema is not the name.
-#}
{% macro landing_table_name(source_node) -%}
    {{ return(adapter.dispatch('landing_table_name', 'cdp')(source_node)) }}
{%- endmacro %}

{% macro default__landing_table_name(source_node) -%}
    {{ return(source_node.schema ~ '.' ~ source_node.name) }}
{%- endmacro %}

{% macro spark__landing_table_name(source_node) -%}
    {%- if not source_node.schema.startswith('raw_') -%}
        {{ exceptions.raise_compiler_error("cdp: the landing source " ~ source_node.source_name ~ "." ~ source_node.name
            ~ " is in the Spark database " ~ source_node.schema ~ ", not raw_<schema>") }}
    {%- endif -%}
    {{ return(source_node.schema[4:] ~ '.' ~ source_node.name) }}
{%- endmacro %}
