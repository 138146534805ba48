{#-
    Schemas are named by layer (staging, reference, audit, ...) rather than
    prefixed with the target schema: each target already has its own database
    file, so the prefix would only add noise for BI users and auditors.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
