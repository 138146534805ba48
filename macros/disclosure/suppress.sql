{#-
    Small-cell suppression with secondary suppression, l-diversity (of cells
    and of totals) and the cell key perturbation: the one place the anonymised
    marts decide what a BI user may see.

    k_anonymise(relation, group_by, cell_column, k_column, ...) renders the
    CTEs `<relation>__ranked`, `<relation>__flagged`, `<relation>__released`
    and `<relation>__published` (so call it between other CTEs, after a comma,
    and select from `<relation>__published`). Input: `relation` has one row per
    cell, with the columns `group_by` + `cell_column`, the number of distinct
    people in the cell (`k_column`), additive `measures`, and the cell keys
    `<k_column>__key` and `<measure>__key` (macro cell_key, streams 0, 1, 2...).
    `subcounts` are counts of people of a subset of the cell (e.g. the
    recipients who opened), each with its `__key`: perturbed like counts, never
    below 0, not subject to k (a share of a k-anonymous cell).

    Rules, per group (the rows sharing `group_by`), all on the true counts:
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
         is_total) with the sum over all cells, suppressed when below k, and in
         an l-diverse mart also when the group's people hold fewer than l
         distinct sensitive values (its sums would tell what they all are).
         Only for cells that partition people (each person in one cell).
      5. withheld totals (`withheld_total`: a boolean column of `relation`, the same
         on every row of a group): a group flagged by it has its total suppressed
         whatever its size, because another mart's cells would otherwise be pinned
         by it (bi_sales_by_region_month for the cohort cells, decision 52); the
         secondary rule then treats the group as one with a suppressed cell, so
         its visible cells do not add the total back up.
    A suppressed row keeps its key and has null k_column and measures. What is
    published is perturbed by the cell key method (macros/disclosure/cell_key.sql):
    counts move by -2..2 (never below k), sums by a continuous draw; the same
    people give the same noise in every release. The publish audit
    (cdp.disclosure_audit) then checks the whole release, across marts.
-#}
{% macro k_anonymise(relation, group_by, cell_column, k_column, measures=[], totals=false, secondary=true,
                     l_diverse=false, total_label='(all)', subcounts=[], withheld_total=none) -%}
    {{ return(adapter.dispatch('k_anonymise', 'cdp')(relation, group_by, cell_column, k_column, measures,
        totals, secondary, l_diverse, total_label, subcounts, withheld_total)) }}
{%- endmacro %}

{% macro default__k_anonymise(relation, group_by, cell_column, k_column, measures, totals, secondary,
                              l_diverse, total_label, subcounts, withheld_total) -%}
{%- if withheld_total is not none and not (totals and secondary) -%}
    {{ exceptions.raise_compiler_error("k_anonymise: withheld_total needs totals=true and secondary=true "
        ~ "(a withheld total is only withheld if its visible cells do not add up to it)") }}
{%- endif -%}
{%- set k = k_anonymity_k() -%}
{%- set l = l_diversity_l() -%}
{%- set groups = group_by | join(', ') -%}
{%- set totals_l_diverse = l_diverse and 'totals_without_l_diversity' not in disclosure_weakened() -%}
{{ relation }}__ranked as (

    select
        *,
        {{ k_column }} < {{ k }} as is_small,
        {{ count_where(k_column ~ ' < ' ~ k) }} over (partition by {{ groups }}) as group_small_cells,
        {%- if withheld_total is not none %}
        {{ count_where(withheld_total) }} over (partition by {{ groups }}) > 0 as is_group_total_withheld,
        {%- else %}
        false as is_group_total_withheld,
        {%- endif %}
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
            (group_small_cells > 0 or is_group_total_withheld)
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
        {{ k_column }},
        {{ k_column }}__key
        {%- for measure in measures + subcounts %},
        {{ measure }},
        {{ measure }}__key
        {%- endfor %}
    from {{ relation }}__flagged
    {%- if totals %}

    union all

    select
        {{ groups }},
        '{{ total_label }}' as {{ cell_column }},
        true as is_total,
        sum({{ k_column }}) < {{ k }}
        {%- if totals_l_diverse %}
        or count(distinct {{ cell_column }}) < {{ l }}
        {%- endif %}
        {%- if withheld_total is not none %}
        or {{ count_where(withheld_total) }} > 0
        {%- endif %} as is_suppressed,
        sum({{ k_column }}) as {{ k_column }},
        {{ total_cell_key(k_column ~ '__key') }} as {{ k_column }}__key
        {%- for measure in measures + subcounts %},
        sum({{ measure }}) as {{ measure }},
        {{ total_cell_key(measure ~ '__key') }} as {{ measure }}__key
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
            else {{ perturb_count(k_column, k_column ~ '__key', k) }}
        end as {{ k_column }}
        {%- for measure in measures %},
        case
            when is_suppressed then null
            else {{ perturb_sum(measure, k_column, measure ~ '__key') }}
        end as {{ measure }}
        {%- endfor %}
        {%- for subcount in subcounts %},
        case
            when is_suppressed then null
            else {{ perturb_count(subcount, subcount ~ '__key', 0) }}
        end as {{ subcount }}
        {%- endfor %}
    from {{ relation }}__released
    {%- if l_diverse %}
    -- With a sensitive attribute, a suppressed cell is left out: its key alone would tell that
    -- someone in the class has that value.
    where is_total or not is_suppressed
    {%- endif %}

)
{%- endmacro %}

{#-
    The Laplace mode (var dp_epsilon) was removed in favour of the cell key
    method (docs/decisions.md, 42): fresh noise every build averages out, and a
    per-person budget across releases cannot be kept honestly by a model that
    a full refresh rebuilds. Setting the var stops the build with that message.
-#}
{% macro reject_removed_disclosure_vars() -%}
    {{ return(adapter.dispatch('reject_removed_disclosure_vars', 'cdp')()) }}
{%- endmacro %}

{% macro default__reject_removed_disclosure_vars() -%}
    {%- if var('dp_epsilon', none) is not none -%}
        {{ exceptions.raise_compiler_error("var dp_epsilon was removed: every release is perturbed by the "
            ~ "cell key method instead (docs/decisions.md, 42); drop the var") }}
    {%- endif -%}
{%- endmacro %}
