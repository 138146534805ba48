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
    verified requests with usable details count. Request ids and times only,
    nothing about the person.
-#}
with subject_requests as (

    select * from {{ ref('stg_privacy__subject_requests') }}

),

-- requests an earlier build already executed keep their first execution time
earlier as (

    {% if is_incremental() -%}
        select request_id from {{ this }}
    {%- else -%}
        select cast(null as varchar) as request_id
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
        and request_id not in (select earlier.request_id from earlier)

)

select * from final
