{{ config(tags=['privacy']) }}
{#-
    Ledger sanity, per person and per identifier: an interval never ends
    before it starts, only the last interval of a purpose may be open, and
    intervals follow each other without overlapping.
-#}
with person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

subject_ledger as (

    select * from {{ ref('int_consent__subject_ledger') }}

),

intervals as (

    select
        'person' as ledger,
        person_key as ledger_key,
        purpose_code,
        interval_number,
        valid_from,
        valid_to
    from person_ledger
    union all
    select
        'subject' as ledger,
        subject_key as ledger_key,
        purpose_code,
        interval_number,
        valid_from,
        valid_to
    from subject_ledger

),

sequenced as (

    select
        *,
        lead(valid_from) over (partition by ledger, ledger_key, purpose_code order by interval_number) as next_valid_from
    from intervals

),

final as (

    select
        ledger,
        ledger_key,
        purpose_code,
        interval_number,
        valid_from,
        valid_to,
        next_valid_from
    from sequenced
    where
        valid_to < valid_from
        or (next_valid_from is not null and valid_to is null)
        or next_valid_from < valid_to
        or next_valid_from < valid_from

)

select * from final
