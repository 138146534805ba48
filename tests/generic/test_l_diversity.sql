{#-
    Distinct l-diversity of a published aggregate: within every equivalence
    class (the rows sharing `quasi_identifiers`) the visible, non-total rows
    show at least l distinct values of `sensitive_column` (l = the `l`
    argument, default var l_diversity), or none at all. Returns the classes
    that show between 1 and l - 1.
-#}
{% test l_diversity(model, quasi_identifiers, sensitive_column, suppressed_column='is_suppressed',
                    total_column='is_total', l=none) %}
{%- set threshold = l if l is not none else l_diversity_l() -%}

select
    {{ quasi_identifiers | join(', ') }},
    count(distinct {{ sensitive_column }}) as visible_values
from {{ model }}
where not {{ suppressed_column }} and not {{ total_column }}
group by {{ quasi_identifiers | join(', ') }}
having count(distinct {{ sensitive_column }}) < {{ threshold }}

{% endtest %}
