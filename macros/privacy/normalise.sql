{#-
    Normalisers. The rules live in Python (cdp.normalise, tested with hostile
    input); the plugin exposes them to SQL as cdp_* functions. Simple rules that
    need no library are plain SQL here.

    The cdp_* functions exist only on a DuckDB connection the plugin (cdp.plugin)
    configured, so their macros are duckdb__ only: another engine registers the
    same Python functions as its own UDFs (docs/portability.md).
-#}
{% macro normalise_email(value) -%}
    {{ return(adapter.dispatch('normalise_email', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_email(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro normalise_email has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__normalise_email (the DuckDB version is "
        ~ "duckdb__normalise_email in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__normalise_email(value) -%}
    cdp_normalise_email({{ value }})
{%- endmacro %}

{% macro normalise_phone(value) -%}
    {{ return(adapter.dispatch('normalise_phone', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_phone(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro normalise_phone has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__normalise_phone (the DuckDB version is "
        ~ "duckdb__normalise_phone in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__normalise_phone(value) -%}
    cdp_normalise_phone({{ value }})
{%- endmacro %}

{% macro normalise_name(value) -%}
    {{ return(adapter.dispatch('normalise_name', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_name(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro normalise_name has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__normalise_name (the DuckDB version is "
        ~ "duckdb__normalise_name in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__normalise_name(value) -%}
    cdp_normalise_name({{ value }})
{%- endmacro %}

{% macro clean_url(value) -%}
    {{ return(adapter.dispatch('clean_url', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__clean_url(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro clean_url has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__clean_url (the DuckDB version is "
        ~ "duckdb__clean_url in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__clean_url(value) -%}
    cdp_clean_url({{ value }})
{%- endmacro %}

{% macro truncate_ip(value) -%}
    {{ return(adapter.dispatch('truncate_ip', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__truncate_ip(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro truncate_ip has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__truncate_ip (the DuckDB version is "
        ~ "duckdb__truncate_ip in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__truncate_ip(value) -%}
    cdp_truncate_ip({{ value }})
{%- endmacro %}

{% macro device_class(value) -%}
    {{ return(adapter.dispatch('device_class', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__device_class(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro device_class has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__device_class (the DuckDB version is "
        ~ "duckdb__device_class in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{% macro duckdb__device_class(value) -%}
    cdp_device_class({{ value }})
{%- endmacro %}

{#- An opaque key (CRM id, order id): trimmed, empty is null. -#}
{% macro normalise_key(value) -%}
    {{ return(adapter.dispatch('normalise_key', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_key(value) -%}
    nullif(trim({{ value }}), '')
{%- endmacro %}

{#- Cookie / device ids and push tokens: trimmed, lower case. -#}
{% macro normalise_token(value) -%}
    {{ return(adapter.dispatch('normalise_token', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_token(value) -%}
    nullif(lower(trim({{ value }})), '')
{%- endmacro %}

{#- Loyalty cards: letters and digits only, upper case. -#}
{% macro normalise_card(value) -%}
    {{ return(adapter.dispatch('normalise_card', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_card(value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro normalise_card has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__normalise_card (the DuckDB version is "
        ~ "duckdb__normalise_card in macros/privacy/normalise.sql)") }}
{%- endmacro %}
{#-
    DuckDB: regexp_replace with the 'g' (every match) option. Engines disagree
    on whether a bare regexp_replace replaces every match (Spark, Trino,
    Snowflake) or the first only (PostgreSQL, DuckDB): no default.
-#}
{% macro duckdb__normalise_card(value) -%}
    nullif(upper(regexp_replace({{ value }}, '[^0-9A-Za-z]', '', 'g')), '')
{%- endmacro %}

{#- An identifier whose type is given by another column (consent log, requests). -#}
{% macro normalise_identifier(id_type, value) -%}
    {{ return(adapter.dispatch('normalise_identifier', 'cdp')(id_type, value)) }}
{%- endmacro %}
{% macro default__normalise_identifier(id_type, value) -%}
    case {{ id_type }}
        when 'customer_id' then {{ normalise_key(value) }}
        when 'email' then {{ normalise_email(value) }}
        when 'phone' then {{ normalise_phone(value) }}
        when 'anonymous_id' then {{ normalise_token(value) }}
    end
{%- endmacro %}

{#- The identifier type a subject id type maps to, null when unknown. -#}
{% macro clean_id_type(value) -%}
    {{ return(adapter.dispatch('clean_id_type', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__clean_id_type(value) -%}
    case lower(trim({{ value }}))
        when 'customer_id' then 'customer_id'
        when 'email' then 'email'
        when 'phone' then 'phone'
        when 'anonymous_id' then 'anonymous_id'
    end
{%- endmacro %}
