{#-
    The one list a processing output must honour: persons who asked for
    restriction or erasure, as of `as_of`, one row per person. Built on
    int_consent__person_restrictions (decision 14: counted from receipt,
    verified or not, through an ambiguous identifier for every candidate).
    Profile and audiences honour it through int_consent__person_purposes; any
    other person-level output (a BI mart's input) must anti-join on it.
-#}
with person_restrictions as (

    select * from {{ ref('int_consent__person_restrictions') }}

),

final as (

    select
        person_key,
        min(restricted_since) as excluded_since,
        bool_or(request_type = 'erasure') as has_erasure_request,
        bool_or(request_type = 'restriction') as has_restriction_request,
        bool_or(request_type = 'erasure' and is_verified) as is_to_be_erased,
        count(*) as request_count,
        {{ as_of() }} as as_of
    from person_restrictions
    group by person_key

)

select * from final
