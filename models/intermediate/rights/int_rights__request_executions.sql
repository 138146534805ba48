{{ config(
    materialized='incremental',
    unique_key='request_id',
    on_schema_change='fail',
) }}

{#-
    When the build first executed each subject request it executes by itself
    (restriction, objection, rectification; the exclusion half of an
    erasure): one row per request, kept across builds (incremental, insert
    only), so a request's closing date does not move with every rebuild. Only
    verified requests with usable details count, and only through an
    identifier that resolves to one known person (decision 51): a request
    naming nobody, the wrong type or several persons is executed by no build
    (int_rights__request_tracking: needs_review). Request ids and times only,
    nothing about the person.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

request_persons as (

    select * from {{ ref('int_rights__request_persons') }}

),

resolved as (

    select request_id
    from request_persons
    group by request_id
    having bool_and(is_unambiguous) and count(distinct person_key) = 1

),

-- requests an earlier build already executed keep their first execution time
earlier as (

    {% if is_incremental() -%}
        select request_id from {{ this }}
    {%- else -%}
        select cast(null as {{ text_type() }}) as request_id
        where false
    {%- endif %}

),

final as (

    select
        request_id,
        request_type,
        {{ as_of() }} as executed_at
    from subject_requests
    where
        is_verified
        and received_at <= {{ as_of() }}
        and request_type in ('restriction', 'objection', 'rectification', 'erasure')
        and (request_type != 'rectification' or rectification_field is not null)
        and request_id in (select resolved.request_id from resolved)
        and request_id not in (select earlier.request_id from earlier)

)

select * from final
