{{ config(tags=['privacy']) }}
{#-
    Every flag the customer profile publishes (a contract column
    is_<purpose>_permitted of dim_customer_profile) names a consent-based
    purpose of the catalogue. The model writes one flag per such column, read
    from permitted_purposes; a flag whose purpose was renamed or dropped from
    the seed would otherwise be false for everyone, silently. Reads the graph.
-#}
{%- set flag_rows = [] -%}
{%- if execute -%}
    {%- set profile = graph.nodes.get('model.cdp.dim_customer_profile') -%}
    {%- for column_name in (profile.columns if profile else {}) -%}
        {%- set flag = modules.re.fullmatch('is_([a-z][a-z0-9_]*)_permitted', column_name) -%}
        {%- if flag -%}
            {%- do flag_rows.append("('" ~ flag.group(1) ~ "')") -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with purposes as (

    select * from {{ ref('purposes') }}

),

flags as (

    select flag_columns.purpose_code
    from (values {{ flag_rows | join(', ') if flag_rows else '(null)' }}) as flag_columns (purpose_code)
    where flag_columns.purpose_code is not null

),

final as (

    select
        flags.purpose_code,
        'dim_customer_profile publishes a flag for a purpose the catalogue does not hold as consent-based' as problem
    from flags
    left join purposes
        on flags.purpose_code = purposes.purpose_code
    where purposes.purpose_code is null or not purposes.is_consent_required

)

select * from final
