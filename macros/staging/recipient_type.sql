{#- The identifier type of a messaging recipient, by channel. -#}
{% macro recipient_type(channel) -%}
    {{ return(adapter.dispatch('recipient_type', 'cdp')(channel)) }}
{%- endmacro %}

{% macro default__recipient_type(channel) -%}
    case lower(trim({{ channel }}))
        when 'email' then 'email'
        when 'sms' then 'phone'
        when 'messenger' then 'phone'
        when 'push' then 'push_token'
    end
{%- endmacro %}
