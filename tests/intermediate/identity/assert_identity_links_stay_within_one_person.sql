{#-
    No under-merge: every pair of identifiers that a source showed together and
    that both belong to a person belongs to one person. (A device that belongs
    to a person shares it with every customer it was used by; strong
    identifiers share it with their neighbours.) Returns the offending pairs.
-#}
with edges as (

    select * from {{ ref('int_identity_edges') }}

),

person_identifiers as {{ inline_cte() }} (

    select * from {{ ref('int_identity_person_identifiers') }}

),

final as (

    select
        edges.source_model,
        edges.first_record_key,
        edges.id_type_a,
        edges.id_type_b,
        person_a.person_key as person_key_a,
        person_b.person_key as person_key_b
    from edges
    inner join person_identifiers as person_a
        on edges.id_key_a = person_a.id_key
    inner join person_identifiers as person_b
        on edges.id_key_b = person_b.id_key
    where person_a.person_key <> person_b.person_key

)

select * from final
