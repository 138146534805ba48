{#-
    Normalisers. The rules live in Python (cdp.normalise, tested with hostile
    input); the plugin exposes them to SQL as cdp_* functions. Simple rules that
    need no library are plain SQL here.
-#}
{% macro normalise_email(value) -%}
    {{ return(adapter.dispatch('normalise_email', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_email(value) -%}
    cdp_normalise_email({{ value }})
{%- endmacro %}

{% macro normalise_phone(value) -%}
    {{ return(adapter.dispatch('normalise_phone', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_phone(value) -%}
    cdp_normalise_phone({{ value }})
{%- endmacro %}

{% macro normalise_name(value) -%}
    {{ return(adapter.dispatch('normalise_name', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__normalise_name(value) -%}
    cdp_normalise_name({{ value }})
{%- endmacro %}

{% macro clean_url(value) -%}
    {{ return(adapter.dispatch('clean_url', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__clean_url(value) -%}
    cdp_clean_url({{ value }})
{%- endmacro %}

{% macro truncate_ip(value) -%}
    {{ return(adapter.dispatch('truncate_ip', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__truncate_ip(value) -%}
    cdp_truncate_ip({{ value }})
{%- endmacro %}

{% macro device_class(value) -%}
    {{ return(adapter.dispatch('device_class', 'cdp')(value)) }}
{%- endmacro %}
{% macro default__device_class(value) -%}
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
    nullif(upper(regexp_replace({{ value }}, '[^0-9A-Za-z]', '', 'g')), '')
{%- endmacro %}

{#- An identifier whose type is given by another column (consent log, requests). -#}
{% macro normalise_identifier(id_type, value) -%}
    case {{ id_type }}
        when 'customer_id' then {{ normalise_key(value) }}
        when 'email' then {{ normalise_email(value) }}
        when 'phone' then {{ normalise_phone(value) }}
        when 'anonymous_id' then {{ normalise_token(value) }}
    end
{%- endmacro %}

{#- The identifier type a subject id type maps to, null when unknown. -#}
{% macro clean_id_type(value) -%}
    case lower(trim({{ value }}))
        when 'customer_id' then 'customer_id'
        when 'email' then 'email'
        when 'phone' then 'phone'
        when 'anonymous_id' then 'anonymous_id'
    end
{%- endmacro %}
