{#-
    How the CRM customer export is triaged: one definition, shared by
    stg_crm__customers_triaged and vault_customer_names, so the row whose names
    the vault keeps is the row staging keeps (the same key, content fingerprint
    and version order). A record changed in the CRM is exported again: the
    version with the latest updated_at is kept.
-#}

{#- The raw columns of a CRM row's content fingerprint (its tie-break), qualified by `alias`. -#}
{% macro crm_customers_fingerprint_columns(alias) -%}
    {{ return(adapter.dispatch('crm_customers_fingerprint_columns', 'cdp')(alias)) }}
{%- endmacro %}

{% macro default__crm_customers_fingerprint_columns(alias) -%}
    {%- set columns = [] -%}
    {%- for column in ['customer_id', 'email', 'phone', 'first_name', 'last_name', 'middle_name', 'birth_date',
        'gender', 'city', 'postal_code', 'address', 'country_code', 'passport_number', 'loyalty_card_number',
        'created_at', 'updated_at', 'is_deleted'] -%}
        {%- do columns.append(alias ~ '.' ~ column) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{#- The triage of normalised CRM rows (`from_cte`: customer_id, updated_at, created_at, _row_fingerprint...). -#}
{% macro crm_customers_triage(from_cte) -%}
    {{ return(adapter.dispatch('crm_customers_triage', 'cdp')(from_cte)) }}
{%- endmacro %}

{% macro default__crm_customers_triage(from_cte) -%}
    {{ triage(
        from_cte=from_cte,
        reject_reason="case when customer_id is null then 'missing_key' end",
        copy_columns=['_row_fingerprint'],
        key_columns=['customer_id'],
        version_order='updated_at desc nulls last, created_at desc nulls last'
    ) }}
{%- endmacro %}
