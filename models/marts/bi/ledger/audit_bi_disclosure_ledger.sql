{{ config(materialized='incremental', schema='audit', unique_key=['release_id', 'mart_name']) }}

{#-
    The disclosure ledger: one row per build (release) and anonymised mart,
    appended on every build and never rewritten. It records how the release
    was depersonalised: k, l, whether Laplace noise was added and with which
    epsilon per published number, the epsilon the release spends per person
    (sequential composition over the noised numbers a person contributes
    to), and how many cells were suppressed. Requirement 16 (epsilon logged
    per release) and 19 (every depersonalisation run logged).
-#}
{%- set epsilon = dp_epsilon() -%}
{#- mart, noised numbers per row, whether a person also counts in a total row -#}
{%- set marts = [
    ('bi_sales_by_region_month', 3, true),
    ('bi_customer_segments', 3, true),
    ('bi_campaign_performance', 5, false),
    ('bi_consent_coverage', 1, true),
    ('bi_cohort_retention', 1, false),
] -%}

with releases as (

    {% for mart_name, noised, has_totals in marts -%}
        select
            '{{ mart_name }}' as mart_name,
            {{ noised }} as noised_numbers,
            {{ 'true' if has_totals else 'false' }} as has_totals,
            count(*) as published_rows,
            count(*) filter (where is_suppressed) as suppressed_rows
        from {{ ref(mart_name) }}
        {% if not loop.last %}union all
        {% endif %}
    {%- endfor %}

),

final as (

    select
        cast('{{ invocation_id }}' as varchar) as release_id,
        cast(mart_name as varchar) as mart_name,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as released_at,
        cast({{ as_of() }} as timestamp) as as_of,
        cast({{ k_anonymity_k() }} as integer) as k_anonymity,
        cast({{ l_diversity_l() }} as integer) as l_diversity,
        cast({{ epsilon if epsilon is not none else 'null' }} as double) as dp_epsilon_per_number,
        cast(
            {{ epsilon if epsilon is not none else 'null' }} * noised_numbers * (case when has_totals then 2 else 1 end)
            as double
        ) as dp_epsilon_spent,
        cast({{ "'laplace'" if epsilon is not none else "'none'" }} as varchar) as dp_mechanism,
        cast(published_rows as bigint) as published_rows,
        cast(suppressed_rows as bigint) as suppressed_rows
    from releases

)

select * from final
