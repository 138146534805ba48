{#-
    k-anonymity of a published aggregate: every row that is not suppressed
    counts at least k people (k = the `k` argument, default var k_anonymity),
    and a suppressed row shows no count (`null_when_suppressed`; false for a
    group-level column such as a cohort size, which must then be null or at
    least k on every row). `k_column` holds the number of
    distinct people behind the row; `suppressed_column` (default
    is_suppressed) marks suppressed rows. Returns the offending rows.
-#}
{% test k_anonymity(model, k_column, suppressed_column='is_suppressed', k=none, null_when_suppressed=true) %}
{%- set threshold = k if k is not none else k_anonymity_k() -%}

select *
from {{ model }}
where
    ({{ suppressed_column }} is distinct from true and ({{ k_column }} is null or {{ k_column }} < {{ threshold }}))
    {%- if null_when_suppressed %}
    or ({{ suppressed_column }} and {{ k_column }} is not null)
    {%- else %}
    or ({{ k_column }} is not null and {{ k_column }} < {{ threshold }})
    {%- endif %}

{% endtest %}
