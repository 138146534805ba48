{{ config(materialized='view') }}

{#-
    Why each identifier is in its person: every pair of identifiers the sources
    showed together, with the source model, the first record that showed it, and
    what resolution did with it:

      link         it joined the two identifiers into one person
      observation  a record naming a single identifier (the identifier was seen)
      refused      one end was refused (see refusal_reason); the pair was not used

    A view: it is read to answer a question about a person, and as a table it
    would copy every edge on every build. It calls no plugin function, so
    another connection can read it. One import CTE per end of a pair: DuckDB
    materialises a CTE read more than once (all its rows, before the joins;
    decision 104).
-#}
with edges as (

    select * from {{ ref('int_identity_edges') }}

),

persons_of_a as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

persons_of_b as (

    select * from {{ ref('int_identity_person_identifiers') }}

),

refused_of_a as (

    select * from {{ ref('int_identity_refused_identifiers') }}

),

refused_of_b as (

    select * from {{ ref('int_identity_refused_identifiers') }}

),

final as (

    select
        edges.source_model,
        edges.first_record_key as record_key,
        edges.id_type_a,
        edges.id_key_a,
        edges.id_type_b,
        edges.id_key_b,
        edges.first_seen_at,
        edges.last_seen_at,
        edges.n_records,
        coalesce(person_a.person_key, person_b.person_key) as person_key,
        case
            when refused_a.id_key is not null or refused_b.id_key is not null then 'refused'
            when edges.is_self_pair then 'observation'
            when person_a.person_key = person_b.person_key then 'link'
            else 'unresolved'
        end as edge_role,
        coalesce(refused_a.refusal_reason, refused_b.refusal_reason) as refusal_reason,
        coalesce(refused_a.id_key, refused_b.id_key) as refused_id_key
    from edges
    left join persons_of_a as person_a
        on edges.id_key_a = person_a.id_key
    left join persons_of_b as person_b
        on edges.id_key_b = person_b.id_key
    left join refused_of_a as refused_a
        on edges.id_key_a = refused_a.id_key
    left join refused_of_b as refused_b
        on edges.id_key_b = refused_b.id_key

)

select * from final
