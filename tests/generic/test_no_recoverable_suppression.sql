{#-
    Differencing attack on a published aggregate with total rows: for every
    group (the rows sharing `group_by`) whose total is visible, the people in
    suppressed cells, recovered as total minus the visible cells, must be
    spread over at least two cells and number at least k (or none). A group
    with one suppressed cell, or a residue of 1 to k - 1 people, gives people
    away. Works also where suppressed cells are left out of the model. Only for cells
    that partition people (each person in one cell of the group). With the
    cell key perturbation on (every real build) every published number is
    noisy, totals no longer add up exactly and this exact check has nothing to
    check: the publish audit (cdp.disclosure_audit) bounds what the noisy
    release gives away, across marts, by linear programming.
-#}
{% test no_recoverable_suppression(model, group_by, k_column, suppressed_column='is_suppressed',
                                   total_column='is_total', k=none) %}
{%- set threshold = k if k is not none else k_anonymity_k() -%}
{%- set groups = group_by | join(', ') -%}
{%- if cell_key_perturbation_on() %}
select 1 as noisy_release where false
{%- else %}

with cells as (

    select
        {{ groups }},
        count(*) filter (where {{ suppressed_column }}) as suppressed_cells,
        coalesce(sum({{ k_column }}) filter (where not {{ suppressed_column }}), 0) as visible_people
    from {{ model }}
    where not {{ total_column }}
    group by {{ groups }}

),

totals as (

    select
        {{ groups }},
        {{ k_column }} as total_people
    from {{ model }}
    where {{ total_column }} and not {{ suppressed_column }}

)

select
    {% for column in group_by %}cells.{{ column }}, {% endfor %}
    cells.suppressed_cells,
    totals.total_people - cells.visible_people as recovered_people
from cells
inner join totals
    on {% for column in group_by %}cells.{{ column }} is not distinct from totals.{{ column }}{{ ' and ' if not loop.last }}{% endfor %}
where
    cells.suppressed_cells = 1
    or totals.total_people - cells.visible_people between 1 and {{ threshold }} - 1
{%- endif %}

{% endtest %}
