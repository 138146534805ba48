{#-
    Reconciliation: every raw row of `source_table` appears exactly once in the
    triaged model, per load batch, with one status; so raw = kept + duplicate +
    superseded + quarantined holds per table and per batch. Returns the batches
    where it does not, with both counts.
-#}
{% test accounts_for_every_raw_row(model, source_name, table_name) %}

with raw_counts as (

    select _batch_id, count(*) as raw_rows
    from {{ source(source_name, table_name) }}
    group by _batch_id

),

triaged_counts as (

    select
        _batch_id,
        count(*) as triaged_rows,
        count(*) filter (where row_status = 'kept') as kept_rows,
        count(*) filter (where row_status = 'duplicate') as duplicate_rows,
        count(*) filter (where row_status = 'superseded') as superseded_rows,
        count(*) filter (where row_status = 'quarantined') as quarantined_rows,
        count(*) filter (
            where row_status is null
            or row_status not in ('kept', 'duplicate', 'superseded', 'quarantined')
            or (row_status = 'quarantined') <> (reject_reason is not null)
        ) as inconsistent_rows
    from {{ model }}
    group by _batch_id

)

select
    coalesce(raw_counts._batch_id, triaged_counts._batch_id) as _batch_id,
    raw_counts.raw_rows,
    triaged_counts.triaged_rows,
    triaged_counts.kept_rows,
    triaged_counts.duplicate_rows,
    triaged_counts.superseded_rows,
    triaged_counts.quarantined_rows,
    triaged_counts.inconsistent_rows
from raw_counts
full outer join triaged_counts
    on raw_counts._batch_id = triaged_counts._batch_id
where
    raw_counts.raw_rows is distinct from triaged_counts.triaged_rows
    or raw_counts.raw_rows is distinct from (
        triaged_counts.kept_rows + triaged_counts.duplicate_rows
        + triaged_counts.superseded_rows + triaged_counts.quarantined_rows
    )
    or triaged_counts.inconsistent_rows > 0

{% endtest %}
