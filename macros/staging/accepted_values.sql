{#-
    The code lists of the landing-zone contract, in one place. A value outside
    its list is an unknown code: staging quarantines the row, or keeps it as
    'other' with a data issue where the row is still meaningful (see each model).
    A list that is a seed (the messaging channels: seed channels) is read from
    the seed in SQL (accepted_values_sql), never written out here.
-#}
{% macro accepted_values(name) -%}
    {{ return(adapter.dispatch('accepted_values', 'cdp')(name)) }}
{%- endmacro %}

{% macro default__accepted_values(name) -%}
    {%- set lists = {
        'web_event_types': ['page_view', 'product_view', 'add_to_cart', 'remove_from_cart',
                            'checkout_started', 'search', 'login', 'signup', 'form_submit'],
        'order_statuses': ['placed', 'paid', 'shipped', 'delivered', 'cancelled', 'returned'],
        'order_channels': ['web', 'app', 'store', 'call_centre'],
        'payment_methods': ['card', 'cash', 'sbp', 'invoice', 'gift_card', 'installments'],
        'currencies': ['RUB', 'EUR', 'USD', 'KZT', 'BYN', 'CNY', 'GBP'],
        'message_event_types': ['sent', 'delivered', 'opened', 'clicked', 'bounced', 'unsubscribed', 'complained'],
        'consent_actions': ['grant', 'withdraw'],
        'consent_channels': ['web_form', 'mobile_app', 'store', 'call_centre', 'email_link', 'sms_reply'],
        'subject_id_types': ['customer_id', 'email', 'phone', 'anonymous_id'],
        'request_types': ['access', 'rectification', 'erasure', 'restriction', 'objection', 'portability'],
        'jurisdictions': ['RU', 'EU'],
    } -%}
    {%- if name in seeded_code_lists() -%}
        {{ exceptions.raise_compiler_error("accepted_values: the code list '" ~ name ~ "' is a seed; use accepted_values_sql") }}
    {%- endif -%}
    {%- if name not in lists -%}
        {{ exceptions.raise_compiler_error("accepted_values: no code list named '" ~ name ~ "'") }}
    {%- endif -%}
    {{ return(lists[name]) }}
{%- endmacro %}

{#- Code lists that are seeds: name -> (seed, column). -#}
{% macro seeded_code_lists() -%}
    {{ return(adapter.dispatch('seeded_code_lists', 'cdp')()) }}
{%- endmacro %}

{% macro default__seeded_code_lists() -%}
    {{ return({'message_channels': ('channels', 'channel')}) }}
{%- endmacro %}

{#-
    The same list as the body of a SQL `in (...)`: 'a', 'b', ... for a written
    list, a select from the seed for a seeded one.
-#}
{% macro accepted_values_sql(name) -%}
    {{ return(adapter.dispatch('accepted_values_sql', 'cdp')(name)) }}
{%- endmacro %}

{% macro default__accepted_values_sql(name) -%}
    {%- set seeded = seeded_code_lists() -%}
    {%- if name in seeded -%}
        select seeded_codes.{{ seeded[name][1] }} from {{ ref(seeded[name][0]) }} as seeded_codes
    {%- else -%}
        {%- for value in accepted_values(name) -%}
            '{{ value }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
