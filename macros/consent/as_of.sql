{#-
    The moment a build is "as of": every time-dependent model and test reads it
    through as_of(), so a build can be reproduced for any date.

    The value comes from outside (`--vars '{as_of: ...}'`), so it is parsed and
    checked here and the SQL literal is re-formatted from the parsed numbers:
    the text the user typed never reaches the SQL. Accepted: an ISO 8601 date
    (`2026-11-01`, midnight UTC) or timestamp (`2026-11-01T09:30`,
    `2026-11-01 09:30:00.5`, optionally with `Z` or a `+03:00` offset, which is
    converted to UTC). Anything else stops the run with a compiler error.

    When as_of is null (the default) the build's start time (run_started_at, in
    UTC) is used, so every model and test of one run sees the same moment.
-#}

{#- The as_of moment as a normalised UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'. -#}
{% macro as_of_text() -%}
    {{ return(adapter.dispatch('as_of_text', 'cdp')()) }}
{%- endmacro %}

{% macro default__as_of_text() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none -%}
        {%- if run_started_at is none -%}
            {{ exceptions.raise_compiler_error(
                "as_of: the var is null (meaning: the start of this run), but this dbt invocation has no "
                ~ "run_started_at; pass an explicit moment, e.g. --vars '{as_of: \"2026-11-01\"}'") }}
        {%- endif -%}
        {%- set started = run_started_at -%}
        {%- if started.tzinfo is not none -%}
            {%- set started = started.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
        {%- endif -%}
        {{ return(started.strftime('%Y-%m-%d %H:%M:%S.%f')) }}
    {%- endif -%}
    {{ return(parse_as_of(value).strftime('%Y-%m-%d %H:%M:%S.%f')) }}
{%- endmacro %}

{#-
    Parse an as_of value (a string, or the date / datetime YAML makes of an
    unquoted date) into a naive UTC datetime, or stop with a clear error.
-#}
{% macro parse_as_of(value) -%}
    {{ return(adapter.dispatch('parse_as_of', 'cdp')(value)) }}
{%- endmacro %}

{% macro default__parse_as_of(value) -%}
    {%- set text = (value | string | trim) -%}
    {%- set hint = "as_of must be an ISO 8601 date or UTC timestamp, e.g. 2026-11-01 or 2026-11-01T09:30:00Z "
        ~ "(an offset such as +03:00 is converted to UTC); leave it unset (null) to use the start of the run" -%}
    {%- set shown = (text[:40] ~ ('...' if text | length > 40 else '')) | tojson -%}
    {%- set pattern = '^([0-9]{4})-([0-9]{2})-([0-9]{2})'
        ~ '(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.]([0-9]{1,6}))?)?'
        ~ '(Z|[+-][0-9]{2}:?[0-9]{2})?)?$' -%}
    {%- set found = modules.re.match(pattern, text) -%}
    {%- if found is none -%}
        {{ exceptions.raise_compiler_error(hint ~ "; got " ~ shown) }}
    {%- endif -%}
    {%- set year = found.group(1) | int -%}
    {%- set month = found.group(2) | int -%}
    {%- set day = found.group(3) | int -%}
    {%- set hour = (found.group(4) or '0') | int -%}
    {%- set minute = (found.group(5) or '0') | int -%}
    {%- set second = (found.group(6) or '0') | int -%}
    {%- set micro = ((found.group(7) or '0') ~ '000000')[:6] | int -%}
    {%- set offset = found.group(8) -%}
    {%- if year < 1900 or year > 2999 or month < 1 or month > 12 or day < 1 or day > 31
        or hour > 23 or minute > 59 or second > 59 -%}
        {{ exceptions.raise_compiler_error(hint ~ "; got " ~ shown ~ " (a field is out of range)") }}
    {%- endif -%}
    {%- set first_of_month = modules.datetime.date(year, month, 1) -%}
    {%- if (first_of_month + modules.datetime.timedelta(days=day - 1)).month != month -%}
        {{ exceptions.raise_compiler_error(hint ~ "; got " ~ shown ~ " (no such day in that month)") }}
    {%- endif -%}
    {%- set moment = modules.datetime.datetime(year, month, day, hour, minute, second, micro) -%}
    {%- if offset and offset != 'Z' -%}
        {%- set digits = offset[1:] | replace(':', '') -%}
        {%- set offset_hours = digits[:2] | int -%}
        {%- set offset_minutes = digits[2:] | int -%}
        {%- if offset_hours > 14 or offset_minutes > 59 -%}
            {{ exceptions.raise_compiler_error(hint ~ "; got " ~ shown ~ " (the UTC offset is out of range)") }}
        {%- endif -%}
        {%- set shift = modules.datetime.timedelta(hours=offset_hours, minutes=offset_minutes) -%}
        {%- set moment = (moment - shift) if offset[0] == '+' else (moment + shift) -%}
    {%- endif -%}
    {{ return(moment) }}
{%- endmacro %}

{#- The as_of moment as a SQL timestamp literal (UTC, no time zone). -#}
{% macro as_of() -%}
    {{ return(adapter.dispatch('as_of', 'cdp')(as_of_text())) }}
{%- endmacro %}

{% macro default__as_of(moment_text) -%}
    cast('{{ moment_text }}' as timestamp)
{%- endmacro %}

{#-
    The oldest moment a row of a category with a `days` retention window may
    have as of as_of: as_of minus `days` days (`days` is a SQL expression,
    typically data_categories.retention_days).
-#}
{% macro retention_cutoff(days) -%}
    {{ return(adapter.dispatch('retention_cutoff', 'cdp')(days)) }}
{%- endmacro %}

{#- Any engine: dbt's cross-database dateadd (each adapter supplies its own). -#}
{% macro default__retention_cutoff(days) -%}
    {{ dbt.dateadd('day', '-1 * cast(' ~ days ~ ' as integer)', as_of()) }}
{%- endmacro %}

{#- DuckDB: to_days() builds the interval. -#}
{% macro duckdb__retention_cutoff(days) -%}
    ({{ as_of() }} - to_days(cast({{ days }} as integer)))
{%- endmacro %}

{#-
    Spark: the timestamp minus a day-time interval of `days` days (exact days in the session's
    UTC, as DuckDB's interval on a timestamp). dbt's dateadd on Spark (date_add) returns a
    date: the time of day would be lost, and a row of as_of's own day kept or dropped wrongly.
-#}
{% macro spark__retention_cutoff(days) -%}
    ({{ as_of() }} - make_dt_interval(cast({{ days }} as int)))
{%- endmacro %}
