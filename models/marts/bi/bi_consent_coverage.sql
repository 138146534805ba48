{{ enforced_contract() }}

{#-
    Consent coverage for BI and the privacy officer: per consent-based purpose,
    capture channel of the grant in force and month (the last 24 months), the
    people whose consent was in force at the end of the month (or at as_of for
    the current month), plus a total row per purpose and month (consent_channel
    '(all)'). From the person consent ledger (purpose consent_management:
    aggregate accountability statistics); people under restriction or erasure
    are left out. k-anonymity with secondary suppression against the total;
    what is published is perturbed by the cell key method (decision 42).
-#}
{{- reject_removed_disclosure_vars() -}}
with person_ledger as (

    select * from {{ ref('int_consent__person_ledger') }}

),

person_restrictions as (

    select * from {{ ref('int_consent__person_restrictions') }}

),

purposes as (

    select * from {{ ref('purposes') }}

),

months as (

    select
        cast(month_range.month_start as date) as coverage_month,
        least(month_range.month_start + interval 1 month, {{ as_of() }}) as measured_at
    from {{ timestamp_series(
            "date_trunc('month', " ~ as_of() ~ ") - interval 23 month",
            "date_trunc('month', " ~ as_of() ~ ") + interval 1 month",
            'interval 1 month', 'month_range', 'month_start') }}

),

ledger as (

    select person_ledger.*
    from person_ledger
    inner join purposes
        on person_ledger.purpose_code = purposes.purpose_code
    where
        purposes.is_consent_required
        and person_ledger.person_key not in (select person_restrictions.person_key from person_restrictions)

),

person_months as (

    select distinct
        ledger.purpose_code,
        months.coverage_month,
        ledger.person_key,
        coalesce(ledger.grant_channel, 'unknown') as consent_channel
    from ledger
    inner join months
        on {{ consent_valid_at('ledger', 'months.measured_at') }}

),

cells as (

    select
        purpose_code,
        coverage_month,
        consent_channel,
        count(*) as persons_in_force,
        {{ cell_key('person_key', 0) }} as persons_in_force__key
    from person_months
    group by all

),

{{ k_anonymise('cells', ['purpose_code', 'coverage_month'], 'consent_channel', 'persons_in_force', [],
    totals=true) }},

final as (

    select
        cast(purpose_code as {{ text_type() }}) as purpose_code,
        cast(coverage_month as date) as coverage_month,
        cast(consent_channel as {{ text_type() }}) as consent_channel,
        cast(is_total as boolean) as is_total,
        cast(persons_in_force as bigint) as persons_in_force,
        cast(is_suppressed as boolean) as is_suppressed,
        cast({{ as_of() }} as timestamp) as as_of
    from cells__published

)

select * from final
