{#-
    Small-cell suppression with secondary suppression, l-diversity and
    optional differential-privacy noise: the one place the anonymised marts
    decide what a BI user may see.

    k_anonymise(relation, group_by, cell_column, k_column, ...) renders the
    CTEs `<relation>__ranked`, `<relation>__flagged`, `<relation>__released`
    (so call it between other CTEs, after a comma, and select from
    `<relation>__released`). Input: `relation` has one row per cell, with the
    columns `group_by` + `cell_column`, the number of distinct people in the
    cell (`k_column`) and additive `measures`.

    Rules, per group (the rows sharing `group_by`):
      1. primary: a cell with fewer than k people is suppressed (k = var k_anonymity);
      2. secondary (`secondary`): when a group has any suppressed cell, the
         smallest other cells are suppressed too until the group has at least two
         suppressed cells that together hold at least k people, so neither a
         published total nor the other cells give any single suppressed cell away;
      3. l-diversity (`l_diverse`: the cell column is the sensitive attribute):
         a group whose visible cells show fewer than l distinct values
         (var l_diversity) is suppressed whole; with a sensitive attribute a
         suppressed cell is left out of the output (its key would tell that
         someone in the class has that value), only the class total remains;
      4. totals (`totals`): one extra row per group (cell = `total_label`,
         is_total) with the sum over all cells, suppressed when below k. Only
         for cells that partition people (each person in one cell of the group).
    A suppressed row keeps its key and has null k_column and measures.
    With var dp_epsilon set, every released count and sum gets Laplace noise
    of scale sensitivity / epsilon (`sensitivity`: column -> sensitivity; counts
    of people 1, sums the per-person bound the model clamped to); the k column
    is then clamped to at least k, which is post-processing and keeps the guarantee.
-#}
{% macro k_anonymise(relation, group_by, cell_column, k_column, measures=[], totals=false, secondary=true,
                     l_diverse=false, total_label='(all)', sensitivity={}) -%}
    {{ return(adapter.dispatch('k_anonymise', 'cdp')(relation, group_by, cell_column, k_column, measures,
        totals, secondary, l_diverse, total_label, sensitivity)) }}
{%- endmacro %}

{% macro default__k_anonymise(relation, group_by, cell_column, k_column, measures, totals, secondary,
                              l_diverse, total_label, sensitivity) -%}
{%- set k = k_anonymity_k() -%}
{%- set l = l_diversity_l() -%}
{%- set groups = group_by | join(', ') -%}
{%- set epsilon = dp_epsilon() -%}
{{ relation }}__ranked as (

    select
        *,
        {{ k_column }} < {{ k }} as is_small,
        {{ count_where(k_column ~ ' < ' ~ k) }} over (partition by {{ groups }}) as group_small_cells,
        row_number() over (partition by {{ groups }} order by {{ k_column }}, {{ cell_column }}) as size_rank,
        coalesce(sum({{ k_column }}) over (
            partition by {{ groups }} order by {{ k_column }}, {{ cell_column }}
            rows between unbounded preceding and 1 preceding
        ), 0) as smaller_cells_people
    from {{ relation }}

),

{{ relation }}__flagged as (

    select
        *,
        is_small
        {%- if secondary %}
        or (
            group_small_cells > 0
            and (size_rank <= greatest(group_small_cells, 2) or smaller_cells_people < {{ k }})
        )
        {%- endif %} as is_suppressed_k
    from {{ relation }}__ranked

),

{{ relation }}__released as (

    select
        {{ groups }},
        {{ cell_column }},
        false as is_total,
        {%- if l_diverse %}
        is_suppressed_k
        or {{ count_where('not is_suppressed_k') }} over (partition by {{ groups }}) < {{ l }}
            as is_suppressed,
        {%- else %}
        is_suppressed_k as is_suppressed,
        {%- endif %}
        {{ k_column }}
        {%- for measure in measures %},
        {{ measure }}
        {%- endfor %}
    from {{ relation }}__flagged
    {%- if totals %}

    union all

    select
        {{ groups }},
        '{{ total_label }}' as {{ cell_column }},
        true as is_total,
        sum({{ k_column }}) < {{ k }} as is_suppressed,
        sum({{ k_column }}) as {{ k_column }}
        {%- for measure in measures %},
        sum({{ measure }}) as {{ measure }}
        {%- endfor %}
    from {{ relation }}
    group by {{ groups }}
    {%- endif %}

),

{{ relation }}__published as (

    select
        {{ groups }},
        {{ cell_column }},
        is_total,
        is_suppressed,
        case
            when is_suppressed then null
            {%- if epsilon is not none %}
            else greatest({{ k }}, round({{ k_column }} + {{ dp_laplace_noise(sensitivity.get(k_column, 1) / epsilon) }}))
            {%- else %}
            else {{ k_column }}
            {%- endif %}
        end as {{ k_column }}
        {%- for measure in measures %},
        case
            when is_suppressed then null
            {%- if epsilon is not none and measure in sensitivity %}
            else greatest(0, {{ measure }} + {{ dp_laplace_noise(sensitivity[measure] / epsilon) }})
            {%- else %}
            else {{ measure }}
            {%- endif %}
        end as {{ measure }}
        {%- endfor %}
    from {{ relation }}__released
    {%- if l_diverse %}
    -- With a sensitive attribute, a suppressed cell is left out: its key alone would tell that
    -- someone in the class has that value.
    where is_total or not is_suppressed
    {%- endif %}

)
{%- endmacro %}

{#- The per-cell, per-measure epsilon of this release (var dp_epsilon), or none when noise is off. -#}
{% macro dp_epsilon() -%}
    {{ return(adapter.dispatch('dp_epsilon', 'cdp')()) }}
{%- endmacro %}

{% macro default__dp_epsilon() -%}
    {%- set value = var('dp_epsilon', none) -%}
    {%- if value is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if value is not number or value <= 0 or value > 10 -%}
        {{ exceptions.raise_compiler_error("var dp_epsilon must be a number in (0, 10] (or null: no noise); got "
            ~ ((value | string)[:20] | tojson)) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#-
    One draw of Laplace(0, scale) noise: the difference of two Exp(1) draws,
    scaled. 1 - random() lies in (0, 1], so the logarithm is finite.
-#}
{% macro dp_laplace_noise(scale) -%}
    {{ return(adapter.dispatch('dp_laplace_noise', 'cdp')(scale)) }}
{%- endmacro %}

{% macro default__dp_laplace_noise(scale) -%}
    {{ exceptions.raise_compiler_error("cdp: macro dp_laplace_noise has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__dp_laplace_noise (the DuckDB version is "
        ~ "duckdb__dp_laplace_noise in macros/disclosure/suppress.sql)") }}
{%- endmacro %}

{#-
    DuckDB: random() is uniform on [0, 1). SQL has no standard random function
    and engines differ (Snowflake's random() is a 64-bit integer), so noise that
    silently came out wrong would void the privacy guarantee: no default.
-#}
{% macro duckdb__dp_laplace_noise(scale) -%}
    ({{ scale }} * (ln(1 - random()) - ln(1 - random())))
{%- endmacro %}

{#-
    A per-person contribution clamped to `bound` when noise is on (a sum's
    sensitivity is the most one person can add); unchanged otherwise.
-#}
{% macro dp_clamp(expression, bound) -%}
    {{ return(adapter.dispatch('dp_clamp', 'cdp')(expression, bound)) }}
{%- endmacro %}

{% macro default__dp_clamp(expression, bound) -%}
    {%- if dp_epsilon() is none -%}
        {{ expression }}
    {%- else -%}
        least({{ expression }}, {{ bound }})
    {%- endif -%}
{%- endmacro %}
