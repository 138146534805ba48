{#-
    The people whose data may feed the anonymised marts (purpose analytics), as
    of `as_of`: analytics consent in force and not stopped by an objection,
    restriction or erasure (int_consent__person_purposes), and active within
    the inactivity limit. One row per person with the generalised
    quasi-identifiers the marts group by: age band and region (regions with
    fewer than five times k such people are folded into 'other').
    Person-level, so it stays in the warehouse: it is never published.
-#}
with person_purposes as (

    select * from {{ ref('int_consent__person_purposes') }}

),

person_activity as (

    select * from {{ ref('int_consent__person_activity') }}

),

subject_persons as (

    select * from {{ ref('int_consent__subject_persons') }}

),

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

permitted as (

    select
        person_purposes.person_key,
        person_activity.last_activity_at
    from person_purposes
    inner join person_activity
        on person_purposes.person_key = person_activity.person_key
    where
        person_purposes.purpose_code = 'analytics'
        and person_purposes.is_permitted
        and person_activity.is_active

),

person_customer as (

    select
        subject_persons.person_key,
        -- ties on updated_at are broken by the value itself, not by customer_key: the result is
        -- deterministic, and the published region does not derive from an identifier (privacy gate)
        {{ value_at_max('customers.birth_year', ['customers.updated_at', 'customers.birth_year']) }} as birth_year,
        {{ value_at_max('customers.region', ['customers.updated_at', 'customers.region']) }} as region
    from subject_persons
    inner join customers
        on subject_persons.subject_key = customers.customer_key
    where subject_persons.is_unambiguous
    group by subject_persons.person_key

),

final as (

    select
        cast(permitted.person_key as {{ text_type() }}) as person_key,
        cast({{ age_band('person_customer.birth_year') }} as {{ text_type() }}) as age_band,
        cast({{ generalise_rare('person_customer.region', 5 * k_anonymity_k()) }} as {{ text_type() }}) as region,
        cast(permitted.last_activity_at as timestamp) as last_activity_at,
        cast({{ as_of() }} as timestamp) as as_of
    from permitted
    left join person_customer
        on permitted.person_key = person_customer.person_key

)

select * from final
