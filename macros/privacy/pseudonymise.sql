{#-
    Keyed pseudonym of an already normalised identifier.
    The key never reaches Jinja: the DuckDB plugin (cdp.plugin) registers one
    function per pseudonymisation domain on every connection, built from keys it
    derives in Python from the master secret. These functions exist only on a
    DuckDB connection the plugin configured, so the macros are duckdb__ only;
    another engine needs its own keyed functions (docs/portability.md).
-#}
{% macro pseudonymise(id_type, value, domain='identity') -%}
    {%- if domain not in ['identity', 'person', 'partner'] -%}
        {{ exceptions.raise_compiler_error("pseudonymise: unknown domain '" ~ domain ~ "' (identity, person, partner)") }}
    {%- endif -%}
    {{ return(adapter.dispatch('pseudonymise', 'cdp')(id_type, value, domain)) }}
{%- endmacro %}

{% macro default__pseudonymise(id_type, value, domain) -%}
    {{ exceptions.raise_compiler_error("cdp: macro pseudonymise has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__pseudonymise (the DuckDB version is "
        ~ "duckdb__pseudonymise in macros/privacy/pseudonymise.sql)") }}
{%- endmacro %}

{% macro duckdb__pseudonymise(id_type, value, domain) -%}
    cdp_pseudonym_{{ domain }}({{ id_type }}, {{ value }})
{%- endmacro %}
{#- Spark: the Java Hive UDFs of the same names (cdp.spark_udf, decision 63). -#}
{% macro spark__pseudonymise(id_type, value, domain) -%}
    cdp_pseudonym_{{ domain }}({{ id_type }}, {{ value }})
{%- endmacro %}

{#- The version of the key in force, e.g. 'v1'. -#}
{% macro key_version() -%}
    {{ return(adapter.dispatch('key_version', 'cdp')()) }}
{%- endmacro %}

{% macro default__key_version() -%}
    {{ exceptions.raise_compiler_error("cdp: macro key_version has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__key_version (the DuckDB version is "
        ~ "duckdb__key_version in macros/privacy/pseudonymise.sql)") }}
{%- endmacro %}

{% macro duckdb__key_version() -%}
    cdp_key_version()
{%- endmacro %}
{% macro spark__key_version() -%}
    cdp_key_version()
{%- endmacro %}

{#-
    Seal a value for the vault (AES-256-GCM, key derived in Python, never in SQL),
    bound to the row it belongs to: the vault table, the row's owner (its
    pseudonym or customer key), its kind (id type or name part) and the key
    version. Identifiers get a deterministic nonce, names a random one
    (cdp.vault.SEALED_TABLES). Registered only in the vault stage.
-#}
{% macro vault_seal(vault_table, owner, kind, value) -%}
    {{ return(adapter.dispatch('vault_seal', 'cdp')(vault_table, owner, kind, value)) }}
{%- endmacro %}

{% macro default__vault_seal(vault_table, owner, kind, value) -%}
    {{ exceptions.raise_compiler_error("cdp: macro vault_seal has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__vault_seal (the DuckDB version is "
        ~ "duckdb__vault_seal in macros/privacy/pseudonymise.sql)") }}
{%- endmacro %}

{% macro duckdb__vault_seal(vault_table, owner, kind, value) -%}
    cdp_vault_seal({{ vault_table }}, {{ owner }}, {{ kind }}, {{ value }})
{%- endmacro %}
{% macro spark__vault_seal(vault_table, owner, kind, value) -%}
    cdp_vault_seal({{ vault_table }}, {{ owner }}, {{ kind }}, {{ value }})
{%- endmacro %}
