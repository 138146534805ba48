{#-
    Helpers for the generic tests consent_presence and within_retention, which
    read their settings from the tested model's `meta` (so adding a purpose or
    a data category to a model is one line of YAML).
-#}

{#- The meta of the model behind `relation` (empty at parse time or for a non-model). -#}
{% macro model_meta_of(relation) -%}
    {{ return(adapter.dispatch('model_meta_of', 'cdp')(relation)) }}
{%- endmacro %}

{% macro default__model_meta_of(relation) -%}
    {%- if not execute -%}
        {{ return({}) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type in ('model', 'seed', 'snapshot')
            and (node.relation_name == (relation | string)
                or (node.alias | lower == relation.identifier | lower and node.schema | lower == relation.schema | lower)) -%}
            {%- set meta = {} -%}
            {%- do meta.update(node.get('meta') or {}) -%}
            {%- do meta.update((node.get('config') or {}).get('meta') or {}) -%}
            {{ return(meta) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return({}) }}
{%- endmacro %}

{#-
    A test argument or the model's meta value, checked against `pattern`
    before it reaches SQL (a column name, a purpose or category code): a value
    that does not match stops the run with a message naming the model.
-#}
{% macro checked_setting(value, name, pattern, relation, required=true) -%}
    {{ return(adapter.dispatch('checked_setting', 'cdp')(value, name, pattern, relation, required)) }}
{%- endmacro %}

{% macro default__checked_setting(value, name, pattern, relation, required) -%}
    {%- if value is none or value == '' -%}
        {%- if required and execute -%}
            {{ exceptions.raise_compiler_error(
                "test on " ~ relation ~ ": set `" ~ name ~ "` in the model's meta (or as a test argument)") }}
        {%- endif -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if modules.re.match(pattern, value | string) is none -%}
        {{ exceptions.raise_compiler_error(
            "test on " ~ relation ~ ": `" ~ name ~ "` = " ~ (value | string | tojson) ~ " is not valid (expected " ~ pattern ~ ")") }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}
