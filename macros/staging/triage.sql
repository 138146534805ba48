{#-
    Give every raw row exactly one status, so that no row silently vanishes:

      quarantined  reject_reason is not null (unusable row; the reason says why)
      duplicate    a re-delivery: same key and same values in `copy_columns` as an
                   earlier row
      superseded   an older version of a record (`key_columns`) whose newest
                   version, by `version_order`, is kept
      kept         everything else: exactly one row per key

    from_cte       the CTE with the candidate rows (must carry _loaded_at, _batch_id,
                   _row_fingerprint)
    reject_reason  SQL expression giving a reason code, or null for a usable row
    copy_columns   columns whose equality (within a key) makes two rows copies of each other
    key_columns    the record's key; one kept row per key
    version_order  ORDER BY of versions, newest first (ties broken by load order and content)

    Only rows that can collide are sorted (docs/decisions.md, 60). A row whose
    _row_fingerprint is null is the only raw row of its triage group
    (triage_fingerprint: triage_source counted the group), so it is kept unless
    rejected; the two window sorts run over the other rows only, which hold
    whole groups. When the copy columns are part of the key, a key has one
    usable first copy and the version sort could change nothing: it is skipped.
    from_cte is read twice (those two sets of rows): a DuckDB model declares it
    `{{ inline_cte() }}` so that it is streamed twice, not held in memory.
-#}
{% macro triage(from_cte, reject_reason, copy_columns, key_columns, version_order) -%}
    {{ return(adapter.dispatch('triage', 'cdp')(from_cte, reject_reason, copy_columns, key_columns, version_order)) }}
{%- endmacro %}

{% macro default__triage(from_cte, reject_reason, copy_columns, key_columns, version_order) -%}
{%- set copy_partition = key_columns + (copy_columns | reject('in', key_columns) | list) -%}
{%- set versions_sorted = copy_partition | length > key_columns | length -%}
-- alone in its group: the first copy and the only version of its key
select
    *,
    1 as copy_number,
    case when reject_reason is null then 1 end as version_number,
    case when reject_reason is not null then 'quarantined' else 'kept' end as row_status
from (
    select
        *,
        {{ reject_reason }} as reject_reason
    from {{ from_cte }}
    where _row_fingerprint is null
) as alone

union all

-- sharing its group with other rows: sorted
select
    *,
    case
        when reject_reason is not null then 'quarantined'
        when copy_number > 1 then 'duplicate'
        when version_number > 1 then 'superseded'
        else 'kept'
    end as row_status
from (
    select
        *,
        case
            when reject_reason is null and copy_number = 1
                then {% if versions_sorted %}row_number() over (
                    partition by
                        reject_reason is null and copy_number = 1,
                        {{ key_columns | join(', ') }}
                    order by {{ version_order }}, _loaded_at desc, _batch_id desc, _row_fingerprint
                ){% else %}1{% endif %}
        end as version_number
    from (
        select
            *,
            row_number() over (
                partition by reject_reason is null, {{ copy_partition | join(', ') }}
                order by _loaded_at, _batch_id, _row_fingerprint
            ) as copy_number
        from (
            select
                *,
                {{ reject_reason }} as reject_reason
            from {{ from_cte }}
            where _row_fingerprint is not null
        ) as checked
    ) as copies
) as versions
{%- endmacro %}

{#-
    A content fingerprint used only to order ties deterministically inside one
    query; it is never selected into a model.
-#}
{% macro row_fingerprint(columns) -%}
    {{ return(adapter.dispatch('row_fingerprint', 'cdp')(columns)) }}
{%- endmacro %}

{#-
    Any engine: dbt's cross-database hash of the values, each written as its
    length, a colon and its text (null as 'n'), so no two rows share the input.
-#}
{% macro default__row_fingerprint(columns) -%}
    {%- set fields = [] -%}
    {%- for column in columns -%}
        {%- set text = 'cast(' ~ column ~ ' as ' ~ dbt.type_string() ~ ')' -%}
        {%- do fields.append('coalesce(' ~ dbt.concat(['cast(' ~ dbt.length(text) ~ ' as ' ~ dbt.type_string() ~ ')', "':'", text]) ~ ", 'n')") -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(fields)) }}
{%- endmacro %}

{#- DuckDB: md5 of the values joined by chr(31), null as chr(0) (PostgreSQL refuses chr(0); Trino's md5 takes varbinary). -#}
{% macro duckdb__row_fingerprint(columns) -%}
    md5(concat_ws(chr(31), {% for column in columns %}coalesce(cast({{ column }} as varchar), chr(0)){{ ", " if not loop.last }}{% endfor %}))
{%- endmacro %}
{#- Spark: DuckDB's fingerprint spelled in Spark SQL (the same md5, so ties break the same way). -#}
{% macro spark__row_fingerprint(columns) -%}
    md5(concat_ws(chr(31), {% for column in columns %}coalesce(cast({{ column }} as string), chr(0)){{ ", " if not loop.last }}{% endfor %}))
{%- endmacro %}

{#-
    The _row_fingerprint of a triaged model (read from triage_rows): the content
    fingerprint of a row that shares its triage group with other raw rows, null
    for a row alone in its group, which the triage never sorts (docs/decisions.md, 60).
-#}
{% macro triage_fingerprint(columns) -%}
    {{ return(adapter.dispatch('triage_fingerprint', 'cdp')(columns)) }}
{%- endmacro %}

{% macro default__triage_fingerprint(columns) -%}
    case when _triage_shared then {{ row_fingerprint(columns) }} end
{%- endmacro %}

{#- Collect field-level issue codes into a list, dropping the ones that did not fire. -#}
{% macro issue_list(issues) -%}
    {{ return(adapter.dispatch('issue_list', 'cdp')(issues)) }}
{%- endmacro %}

{% macro default__issue_list(issues) -%}
    {{ exceptions.raise_compiler_error("cdp: macro issue_list has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__issue_list (the DuckDB version is "
        ~ "duckdb__issue_list in macros/staging/triage.sql)") }}
{%- endmacro %}

{#-
    DuckDB: a list literal filtered with a lambda (list_filter). Another engine
    needs its own array type and filter (Spark and Trino: filter(array, x -> ...);
    Snowflake: array_compact).
-#}
{% macro duckdb__issue_list(issues) -%}
    list_filter([
        {%- for code, condition in issues.items() %}
        case when {{ condition }} then '{{ code }}' end{{ "," if not loop.last }}
        {%- endfor %}
    ], lambda issue: issue is not null)
{%- endmacro %}
{#- Spark: an array filtered with a lambda (the codes in the same order). -#}
{% macro spark__issue_list(issues) -%}
    filter(array(
        {%- for code, condition in issues.items() %}
        case when {{ condition }} then '{{ code }}' end{{ "," if not loop.last }}
        {%- endfor %}
    ), issue -> issue is not null)
{%- endmacro %}
