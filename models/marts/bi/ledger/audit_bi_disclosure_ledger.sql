{{ config(materialized='incremental', unique_key=['release_id', 'mart_name'],
    on_schema_change='append_new_columns') }}

{#-
    The disclosure ledger of the builds: one row per build and anonymised
    mart, appended on every build. It records how the build was
    depersonalised: k, l, the cell key perturbation and its bounds, the
    protection level the publish audit demands of suppressed cells, any
    weakening (only attack tests set one; publish refuses such a build), and
    how many cells were suppressed. `cdp publish` reads the latest build's row
    and keeps the durable record of every release in its owner-only state
    folder, which neither a full refresh nor an erasure rebuild touches
    (decision 44). Requirement 16 and 19 (every depersonalisation run logged).
-#}
{%- set parameters = cell_key_parameters() -%}
{%- set marts = [
    'bi_sales_by_region_month',
    'bi_customer_segments',
    'bi_campaign_performance',
    'bi_consent_coverage',
    'bi_cohort_retention',
] -%}

with releases as (

    {% for mart_name in marts -%}
        select
            '{{ mart_name }}' as mart_name,
            count(*) as published_rows,
            count(*) filter (where is_suppressed) as suppressed_rows
        from {{ ref(mart_name) }}
        {% if not loop.last %}union all
        {% endif %}
    {%- endfor %}

),

final as (

    select
        cast('{{ invocation_id }}' as {{ text_type() }}) as release_id,
        cast(mart_name as {{ text_type() }}) as mart_name,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as released_at,
        cast({{ as_of() }} as timestamp) as as_of,
        cast({{ k_anonymity_k() }} as integer) as k_anonymity,
        cast({{ l_diversity_l() }} as integer) as l_diversity,
        cast({{ "'cell_key'" if cell_key_perturbation_on() else "'none'" }} as {{ text_type() }}) as perturbation,
        cast({{ parameters['max_count_noise'] if cell_key_perturbation_on() else 0 }} as integer)
            as perturbation_max_count_noise,
        cast({{ parameters['sum_magnitude'] if cell_key_perturbation_on() else 0 }} as double)
            as perturbation_sum_magnitude,
        cast({{ suppression_protection_level() }} as integer) as suppression_protection,
        cast('{{ disclosure_weakened() | join(",") }}' as {{ text_type() }}) as weakened,
        cast(published_rows as bigint) as published_rows,
        cast(suppressed_rows as bigint) as suppressed_rows
    from releases

)

select * from final
