{#-
    The stage a model belongs to is checked when it runs: a privacy-stage model
    run on the analytics target (which has no key, no raw zone and no vault)
    stops with one clear message instead of a missing-function error. The stage
    of a target is its name: privacy or vault (or a name ending in _privacy /
    _vault); every other target is the analytics stage.
-#}
{% macro target_stage() -%}
    {%- set name = target.name -%}
    {%- if name == 'privacy' or name.endswith('_privacy') -%}
        {{ return('privacy') }}
    {%- elif name == 'vault' or name.endswith('_vault') -%}
        {{ return('vault') }}
    {%- else -%}
        {{ return('analytics') }}
    {%- endif -%}
{%- endmacro %}

{#- The stage a node belongs to, from its tags (dbt_project.yml, selectors.yml). -#}
{% macro node_stage(tags) -%}
    {%- if 'vault_stage' in tags -%}
        {{ return('vault') }}
    {%- elif 'privacy_stage' in tags -%}
        {{ return('privacy') }}
    {%- else -%}
        {{ return('analytics') }}
    {%- endif -%}
{%- endmacro %}

{% macro require_stage() -%}
    {%- set stage = node_stage(config.get('tags') or []) -%}
    {%- if execute and target_stage() != stage -%}
        {{ exceptions.raise_compiler_error(
            "cdp: " ~ this.identifier ~ " belongs to the " ~ stage ~ " stage, which runs with the "
            ~ "master key: build it with `cdp build` (or dbt --target " ~ stage ~ " with "
            ~ "CDP_MASTER_KEY_FILE). The target '" ~ target.name ~ "' is the "
            ~ target_stage() ~ " stage (docs/decisions.md, \"Two stages\")") }}
    {%- endif -%}
{%- endmacro %}
