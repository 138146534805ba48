{#-
    The consent history per person and purpose, as of `as_of`: the events of
    all of a person's identifiers in one sequence (docs/decisions.md,
    "Consent per person"), so the latest effective time wins per person and
    purpose, with the same tie rule as per identifier. Opt-outs (unsubscribes, complaints, objections)
    are withdrawals here too. A grant counts for a person only through an
    identifier that belongs to that person alone; a withdrawal through an
    ambiguous identifier (shared mailbox, family phone) counts for every person
    it may belong to. The purge keeps what it judged (decision 71): a
    withdrawal counts for every person of its kept scope, and a grant it
    judged made through a shared identifier counts for nobody, also after
    the evidence that linked or shared those identifiers is destroyed.

    Retention (consent_records) per person: an event is left out once the
    first withdrawal of the person at or after it is older than the window,
    so an old opt-out through one identifier takes the grants it closed
    through others with it (and the purge destroys them together).
-#}
{#- the consent log's columns each attributed event carries (attributed and scoped alike) -#}
{%- set event_columns = [
    'purpose_code', 'consent_event_id', 'subject_id_type', 'subject_key', 'action',
    'event_origin', 'channel', 'policy_version', 'evidence_ref', 'captured_at',
    'effective_at', '_loaded_at',
] %}

with consent_history as {{ inline_cte() }} (

    select * from {{ ref('int_consent__consent_history') }}

),

subject_persons as {{ inline_cte() }} (

    select * from {{ ref('int_consent__subject_persons') }}

),

consent_scopes as {{ inline_cte() }} (

    select * from {{ ref('stg_rights__consent_scopes') }}

),

withdrawal_scopes as (

    select
        event_id as withdrawal_id,
        purpose_code,
        member_key
    from consent_scopes
    where scope_kind = 'withdrawal'

),

-- grants judged, when the purge kept their scope, to be made through a shared identifier
ambiguous_grants as (

    select distinct
        event_id as consent_event_id,
        purpose_code
    from consent_scopes
    where scope_kind = 'ambiguous_grant'

),

data_categories as (

    select * from {{ ref('data_categories') }}

),

retention as (

    select retention_days from data_categories
    where data_category = 'consent_records'

),

attributed as (

    select
        subject_persons.person_key,
        {%- for column in event_columns %}
            consent_history.{{ column }},
        {%- endfor %}
        subject_persons.is_unambiguous as is_subject_unambiguous
    from consent_history
    inner join subject_persons
        on consent_history.subject_key = subject_persons.subject_key
    where
        consent_history.action = 'withdraw'
        or (
            subject_persons.is_unambiguous
            and not exists (
                select 1
                from ambiguous_grants
                where
                    ambiguous_grants.consent_event_id = consent_history.consent_event_id
                    and ambiguous_grants.purpose_code = consent_history.purpose_code
            )
        )

),

-- A withdrawal also reaches every person of the scope it was judged for, kept by the
-- purge as consent proof (stg_rights__consent_scopes, decision 71): the evidence that
-- linked those identifiers may be gone, the withdrawal's reach is not. Withdrawals only:
-- a kept scope joins no person for a grant, the profile or activity.
scoped as (

    select
        subject_persons.person_key,
        {%- for column in event_columns %}
            consent_history.{{ column }},
        {%- endfor %}
        false as is_subject_unambiguous
    from consent_history
    inner join withdrawal_scopes
        on
            consent_history.consent_event_id = withdrawal_scopes.withdrawal_id
            and consent_history.purpose_code = withdrawal_scopes.purpose_code
    inner join subject_persons
        on withdrawal_scopes.member_key = subject_persons.subject_key
    where
        consent_history.action = 'withdraw'
        and not exists (
            select 1
            from attributed
            where
                attributed.person_key = subject_persons.person_key
                and attributed.consent_event_id = consent_history.consent_event_id
                and attributed.purpose_code = consent_history.purpose_code
        )

),

reached as (

    select * from attributed
    union
    select * from scoped

),

episodes as (

    select
        *,
        -- The person's first withdrawal at or after this event: when the episode it belongs to ended.
        min(case when action = 'withdraw' then effective_at end) over (
            partition by person_key, purpose_code
            order by effective_at
            range between current row and unbounded following
        ) as consent_ended_at
    from reached

),

retained_events as (

    select episodes.*
    from episodes
    cross join retention
    where
        episodes.consent_ended_at is null
        or episodes.consent_ended_at >= {{ retention_cutoff('retention.retention_days') }}

),

effects as (

    {{ consent_event_effects('retained_events', ['person_key', 'purpose_code']) }}

),

final as (

    select
        person_key,
        purpose_code,
        consent_event_id,
        event_sequence,
        action,
        consent_effect,
        previous_action,
        subject_id_type,
        subject_key,
        is_subject_unambiguous,
        event_origin,
        channel,
        policy_version,
        evidence_ref,
        captured_at,
        effective_at,
        consent_ended_at,
        _loaded_at,
        {{ as_of() }} as as_of
    from effects

)

select * from final
