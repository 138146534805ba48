{#-
    Every person's anchor is its earliest identifier (first seen, then type,
    then pseudonym) and every identifier of a component names the same anchor:
    an incremental run that left a stale anchor behind fails here.
-#}
with components as (

    select * from {{ ref('int_identity_components') }}

),

nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

ranked as (

    select
        components.person_key,
        components.anchor_key,
        components.id_key,
        row_number() over (
            partition by components.person_key
            order by
                nodes.first_seen_at asc nulls last,
                {{ identity_id_type_rank('components.id_type') }} asc,
                components.id_key asc
        ) as preference
    from components
    inner join nodes
        on components.id_key = nodes.id_key

),

persons as (

    select
        person_key,
        count(distinct anchor_key) as n_anchors,
        min(case when preference = 1 then id_key end) as earliest_key,
        min(anchor_key) as anchor_key
    from ranked
    group by person_key

),

final as (

    select *
    from persons
    where n_anchors <> 1 or earliest_key <> anchor_key

)

select * from final
