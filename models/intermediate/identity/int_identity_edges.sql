{#-
    On Spark a table, rebuilt whole on every run: Parquet tables refuse the
    pre-hook's delete (docs/portability.md, "Identity on Spark"); on a full
    build the pre-hook renders nothing.
-#}
{{ config(
    materialized=('table' if target.type == 'spark' else 'incremental'),
    incremental_strategy='delete+insert',
    unique_key=['source_model', 'id_key_a', 'id_key_b'],
    on_schema_change='fail',
    pre_hook="{{ identity_unfold_changed_sources() }}",
) }}

{#-
    The identity graph's evidence: one row per pair of identifiers that one
    source model saw together (a self pair when a record names one identifier
    only), with the first record that showed it.

    Every version of a record is evidence (a customer's earlier phone is still
    theirs), so kept and superseded rows are read; duplicates and quarantined
    rows are not. Subject requests are no evidence: a request names a person
    the other sources know, it never makes one (decision 51). The evidence itself
    is macros/identity/identity_evidence.sql.

    Incremental: each run reads the staging rows loaded after the last run's (per
    source model) and folds them into the existing pairs. A source model whose
    rows up to that point changed since (a purge deleted or rewrote some; a late
    batch) is unfolded first and read whole (the pre-hook,
    identity_unfold_changed_sources): what the purge destroyed leaves the graph.
-#}
-- how far each source model was read by earlier runs
with loaded_until as (

    {% if is_incremental() %}
        select
            source_model,
            max(last_loaded_at) as loaded_until
        from {{ this }}
        group by source_model
    {% else %}
        select
            cast(null as {{ text_type() }}) as source_model,
            cast(null as timestamp) as loaded_until
        where false
    {% endif %}

),

evidence as (

    {{ identity_evidence('loaded_until') }}

),

new_edges as (

    select
        source_model,
        id_type_a,
        id_key_a,
        id_type_b,
        id_key_b,
        {{ identity_earliest('record_key', 'observed_at') }} as first_record_key,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as n_records,
        sum(evidence_checksum) as evidence_checksum,
        max(_loaded_at) as last_loaded_at
    from evidence
    group by source_model, id_type_a, id_key_a, id_type_b, id_key_b

),

{% if is_incremental() %}

    -- pairs seen again: fold the earlier runs' counts and first record in
    touched_edges as (

        select previous.*
        from {{ this }} as previous
        inner join new_edges
            on
                previous.source_model = new_edges.source_model
                and previous.id_key_a = new_edges.id_key_a
                and previous.id_key_b = new_edges.id_key_b

    ),

    all_edges as (

        select
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            first_record_key,
            first_seen_at,
            last_seen_at,
            n_records,
            evidence_checksum,
            last_loaded_at
        from new_edges
        union all
        select
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            first_record_key,
            first_seen_at,
            last_seen_at,
            n_records,
            evidence_checksum,
            last_loaded_at
        from touched_edges

    ),

    final as (

        select
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            cast(sum(n_records) as bigint) as n_records,
            {{ identity_earliest('first_record_key', 'first_seen_at') }} as first_record_key,
            min(first_seen_at) as first_seen_at,
            max(last_seen_at) as last_seen_at,
            max(last_loaded_at) as last_loaded_at,
            id_key_a = id_key_b as is_self_pair,
            sum(evidence_checksum) as evidence_checksum
        from all_edges
        group by source_model, id_type_a, id_key_a, id_type_b, id_key_b

    )

{% else %}

    {#- new_edges has one row per pair already: grouping it again would hold a second table of
        every pair (11.3 M at 1,000,000 customers) for nothing (decision 101). The columns keep
        the order of the branch above (hence the noqa). -#}
    final as (

        select  -- noqa: ST06
            source_model,
            id_type_a,
            id_key_a,
            id_type_b,
            id_key_b,
            cast(n_records as bigint) as n_records,
            first_record_key,
            first_seen_at,
            last_seen_at,
            last_loaded_at,
            id_key_a = id_key_b as is_self_pair,
            evidence_checksum
        from new_edges

    )

{% endif %}

select * from final
