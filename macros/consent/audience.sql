{#-
    A purpose's audience (rpt_<channel>_audience): the rows of the long-format
    rpt_marketing_audiences for one marketing purpose, in the columns the
    published audience models have always had. Which purposes have an
    audience, and which contact identifier each is sent to, is data (seeds
    purposes.message_channels and channels); this only picks one purpose.
-#}
{% macro purpose_audience(purpose_code) -%}
    {{ return(adapter.dispatch('purpose_audience', 'cdp')(purpose_code)) }}
{%- endmacro %}

{% macro default__purpose_audience(purpose_code) -%}
with marketing_audiences as (

    select * from {{ ref('rpt_marketing_audiences') }}

),

final as (

    select
        person_key,
        contact_id_type,
        contact_key,
        consent_valid_from,
        consent_channel,
        policy_version,
        evidence_ref,
        last_activity_at,
        as_of
    from marketing_audiences
    where purpose_code = '{{ purpose_code }}'

)

select * from final
{%- endmacro %}
