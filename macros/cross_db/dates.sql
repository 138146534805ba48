{#-
    Date arithmetic the engines spell differently (issue 19). Each duckdb__ version is the SQL
    the rights and profile models wrote before the port; each spark__ version was checked
    against it in a Spark 4.3 session (docs/portability.md, "Rights and the profile on Spark").
-#}

{#-
    One row per day from `first_day` to `last_day` (dates, both included), as a select-list
    expression of type date (a set-returning expression: at most one per select, no
    expression around it).
-#}
{% macro day_rows(first_day, last_day) -%}
    {{ return(adapter.dispatch('day_rows', 'cdp')(first_day, last_day)) }}
{%- endmacro %}

{% macro default__day_rows(first_day, last_day) -%}
    {{ exceptions.raise_compiler_error("cdp: macro day_rows has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__day_rows (the DuckDB version is "
        ~ "duckdb__day_rows in macros/cross_db/dates.sql)") }}
{%- endmacro %}

{#- DuckDB: unnest over generate_series of timestamps, cast back to a date. -#}
{% macro duckdb__day_rows(first_day, last_day) -%}
    cast(unnest(generate_series({{ first_day }}, {{ last_day }}, interval 1 day)) as date)
{%- endmacro %}

{#- Spark: explode over sequence, whose elements are already dates (a generator cannot sit in a cast). -#}
{% macro spark__day_rows(first_day, last_day) -%}
    explode(sequence({{ first_day }}, {{ last_day }}, interval 1 day))
{%- endmacro %}

{#- The ISO day of the week of a date: 1 for Monday to 7 for Sunday. -#}
{% macro iso_day_of_week(value) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'cdp')(value)) }}
{%- endmacro %}

{#- Trino, Snowflake (dayofweekiso), PostgreSQL (extract(isodow ...)) differ: write yours. -#}
{% macro default__iso_day_of_week(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro iso_day_of_week has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__iso_day_of_week (the DuckDB version is "
        ~ "duckdb__iso_day_of_week in macros/cross_db/dates.sql)") }}
{%- endmacro %}

{% macro duckdb__iso_day_of_week(value) -%}
    isodow({{ value }})
{%- endmacro %}

{#- Spark: weekday() is 0 for Monday to 6 for Sunday (dayofweek() would start on Sunday). -#}
{% macro spark__iso_day_of_week(value) -%}
    (weekday({{ value }}) + 1)
{%- endmacro %}

{#-
    The date `months` calendar months after the date `value`, the day clamped to the end of a
    shorter month (2026-01-31 plus one month is 2026-02-28).
-#}
{% macro date_add_months(value, months) -%}
    {{ return(adapter.dispatch('date_add_months', 'cdp')(value, months)) }}
{%- endmacro %}

{% macro default__date_add_months(value, months) -%}
    {{ exceptions.raise_compiler_error("cdp: macro date_add_months has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__date_add_months (the DuckDB version is "
        ~ "duckdb__date_add_months in macros/cross_db/dates.sql)") }}
{%- endmacro %}

{#- DuckDB: a date plus an interval of months is a timestamp: cast back to a date. -#}
{% macro duckdb__date_add_months(value, months) -%}
    cast({{ value }} + to_months({{ months }}) as date)
{%- endmacro %}

{#- Spark: add_months, which clamps the day as DuckDB does (and no longer moves a month's last day to the next month's last). -#}
{% macro spark__date_add_months(value, months) -%}
    add_months({{ value }}, {{ months }})
{%- endmacro %}

{#- The number of days from the date `earlier` to the date `later` (negative when later is earlier). -#}
{% macro date_minus_date(later, earlier) -%}
    {{ return(adapter.dispatch('date_minus_date', 'cdp')(later, earlier)) }}
{%- endmacro %}

{#- DuckDB and PostgreSQL: a date minus a date is an integer of days. -#}
{% macro default__date_minus_date(later, earlier) -%}
    {{ later }} - {{ earlier }}
{%- endmacro %}

{#- Spark: a date minus a date is a day-time interval; datediff gives the days as an integer. -#}
{% macro spark__date_minus_date(later, earlier) -%}
    datediff({{ later }}, {{ earlier }})
{%- endmacro %}

{#-
    The number of day boundaries (midnights, UTC) from the timestamp `start` to the timestamp
    `end`: the difference of their dates, whatever the time of day.
-#}
{% macro day_boundaries_between(start, end) -%}
    {{ return(adapter.dispatch('day_boundaries_between', 'cdp')(start, end)) }}
{%- endmacro %}

{% macro default__day_boundaries_between(start, end) -%}
    {{ exceptions.raise_compiler_error("cdp: macro day_boundaries_between has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__day_boundaries_between (the DuckDB version is "
        ~ "duckdb__day_boundaries_between in macros/cross_db/dates.sql)") }}
{%- endmacro %}

{#- DuckDB: date_diff('day', ...) counts day boundaries crossed. -#}
{% macro duckdb__day_boundaries_between(start, end) -%}
    date_diff('day', {{ start }}, {{ end }})
{%- endmacro %}

{#- Spark: datediff casts both timestamps to dates (the session's time zone, UTC), then subtracts. -#}
{% macro spark__day_boundaries_between(start, end) -%}
    datediff({{ end }}, {{ start }})
{%- endmacro %}
