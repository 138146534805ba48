{#-
    Generalisation of quasi-identifiers for the anonymised marts: the values a
    BI user sees are coarse enough that a combination of them describes many
    people. All dispatched, so another engine can supply its own SQL.
-#}

{#- The k of k-anonymity (var k_anonymity, default 10), checked: an integer of at least 2. -#}
{% macro k_anonymity_k() -%}
    {{ return(adapter.dispatch('k_anonymity_k', 'cdp')()) }}
{%- endmacro %}

{% macro default__k_anonymity_k() -%}
    {%- set value = var('k_anonymity', 10) -%}
    {%- if value is not number or value != (value | int) or (value | int) < 2 -%}
        {{ exceptions.raise_compiler_error("var k_anonymity must be an integer of at least 2 (default 10); got "
            ~ ((value | string)[:20] | tojson)) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}

{#- The l of l-diversity (var l_diversity, default 2), checked: an integer of at least 1. -#}
{% macro l_diversity_l() -%}
    {{ return(adapter.dispatch('l_diversity_l', 'cdp')()) }}
{%- endmacro %}

{% macro default__l_diversity_l() -%}
    {%- set value = var('l_diversity', 2) -%}
    {%- if value is not number or value != (value | int) or (value | int) < 1 -%}
        {{ exceptions.raise_compiler_error("var l_diversity must be an integer of at least 1 (default 2); got "
            ~ ((value | string)[:20] | tojson)) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}

{#- Age band at as_of from a birth year: under_18, 18-24, 25-34, 35-44, 45-54, 55-64, 65_plus, unknown. -#}
{% macro age_band(birth_year) -%}
    {{ return(adapter.dispatch('age_band', 'cdp')(birth_year)) }}
{%- endmacro %}

{% macro default__age_band(birth_year) -%}
    case
        when {{ birth_year }} is null then 'unknown'
        when year({{ as_of() }}) - {{ birth_year }} < 18 then 'under_18'
        when year({{ as_of() }}) - {{ birth_year }} < 25 then '18-24'
        when year({{ as_of() }}) - {{ birth_year }} < 35 then '25-34'
        when year({{ as_of() }}) - {{ birth_year }} < 45 then '35-44'
        when year({{ as_of() }}) - {{ birth_year }} < 55 then '45-54'
        when year({{ as_of() }}) - {{ birth_year }} < 65 then '55-64'
        else '65_plus'
    end
{%- endmacro %}

{#- The first day of the month of a timestamp, as a date. -#}
{% macro month_of(moment) -%}
    {{ return(adapter.dispatch('month_of', 'cdp')(moment)) }}
{%- endmacro %}

{% macro default__month_of(moment) -%}
    cast(date_trunc('month', {{ moment }}) as date)
{%- endmacro %}

{#- The Monday of the ISO week of a timestamp, as a date. -#}
{% macro week_of(moment) -%}
    {{ return(adapter.dispatch('week_of', 'cdp')(moment)) }}
{%- endmacro %}

{% macro default__week_of(moment) -%}
    cast(date_trunc('week', {{ moment }}) as date)
{%- endmacro %}

{#-
    Roll rare values up: `column` as is when at least `minimum` rows of the
    relation share it, else `other_label` (null becomes 'unknown' first). A
    window expression: use it in a select over one row per person, so
    `minimum` counts people. Region comes from the city in staging
    (seed city_regions); this step folds regions too small to publish.
-#}
{% macro generalise_rare(column, minimum, other_label='other') -%}
    {{ return(adapter.dispatch('generalise_rare', 'cdp')(column, minimum, other_label)) }}
{%- endmacro %}

{% macro default__generalise_rare(column, minimum, other_label) -%}
    case
        when count(*) over (partition by coalesce({{ column }}, 'unknown')) >= {{ minimum }}
            then coalesce({{ column }}, 'unknown')
        else '{{ other_label }}'
    end
{%- endmacro %}
