"""The consent_log rule: consent records expire when their episode ended longer ago than the
window, judged per person (as the warehouse's person ledger does).
"""

from __future__ import annotations

from cdp.purge.core import OPT_OUT_EVENT_TYPES, RECIPIENT_TYPES, Purger, Rule, quote_list


def plan_consent_records(purger: Purger) -> None:
    """Consent-log rows whose episode ended longer ago than the window, judged per person."""
    known = [p.purpose_code for p in purger.purposes]
    objectable = [
        p.purpose_code
        for p in purger.purposes
        if p.legal_basis in ("consent", "legitimate_interest")
    ]
    channel_purposes = [(c, p.purpose_code) for p in purger.purposes for c in p.message_channels]
    channel_values = ", ".join(f"('{c}', '{p}')" for c, p in channel_purposes) or "(null, null)"
    for value in (*known, *[c for c, _ in channel_purposes]):
        quote_list([value])
    purger.sql(
        f"""
        create or replace temp table purge_consent_events as
        select
            events.rowid as row_id,
            events._batch_id,
            keys.subject_key,
            lower(trim(events.purpose_code)) as purpose_code,
            lower(trim(events.action)) as action,
            coalesce(least(events.captured_at, events._loaded_at), events._loaded_at) as effective_at,
            keys.subject_key is not null
                and lower(trim(events.purpose_code)) in ({quote_list(known)})
                and lower(trim(events.action)) in ('grant', 'withdraw')
                and events.captured_at is not null as is_interpretable
        from privacy.consent_events as events
        left join purge_keys as keys
            on lower(trim(events.subject_id_type)) = keys.id_type and events.subject_id = keys.raw_value
        """
    )
    # Every event that ends an episode: consent-log withdrawals, opt-out messages, objections.
    purger.sql(
        f"""
        create or replace temp table purge_closers as
        select subject_key, purpose_code, effective_at
        from purge_consent_events
        where is_interpretable and action = 'withdraw'
        union all
        select keys.subject_key, channel_purposes.purpose_code, coalesce(messages.event_at, messages._loaded_at)
        from messaging.message_events as messages
        inner join (values {channel_values}) as channel_purposes (channel, purpose_code)
            on lower(trim(messages.channel)) = channel_purposes.channel
        inner join purge_keys as keys
            on
                (keys.id_type = 'customer_id' and messages.customer_id = keys.raw_value)
                or (
                    keys.id_type = case lower(trim(messages.channel))
                        {" ".join(f"when '{c}' then '{t}'" for c, t in RECIPIENT_TYPES.items())}
                    end
                    and messages.recipient = keys.raw_value
                )
        where lower(trim(messages.event_type)) in ({quote_list(OPT_OUT_EVENT_TYPES)})
        union all
        select keys.subject_key, purposes.purpose_code, coalesce(requests.received_at, requests._loaded_at)
        from privacy.subject_requests as requests
        inner join purge_keys as keys
            on lower(trim(requests.subject_id_type)) = keys.id_type and requests.subject_id = keys.raw_value
        inner join (select unnest([{quote_list(known)}]) as purpose_code) as purposes
            on
                purposes.purpose_code = case when coalesce(try(json_valid(requests.details)), false)
                    then lower(trim(json_extract_string(requests.details, '$.purpose_code'))) end
                or (
                    coalesce(case when coalesce(try(json_valid(requests.details)), false)
                        then lower(trim(json_extract_string(requests.details, '$.purpose_code'))) end, '')
                        not in ({quote_list(known)})
                    and purposes.purpose_code in ({quote_list(objectable)})
                )
        where lower(trim(requests.request_type)) = 'objection' and keys.subject_key is not null
        union all
        -- a kept withdrawal scope: the withdrawal closes the episodes of every identifier it
        -- was judged for, also after the evidence that linked them is gone (scopes.py)
        select member_key, purpose_code, event_at
        from purge_scopes
        where scope_kind = 'withdrawal'
        """
    )
    # Owners of an episode: the persons an identifier belongs to (all candidates for an
    # ending event, the sole owner for a grant, as the ledger does), else the identifier.
    purger.sql(
        """
        create or replace temp table purge_closer_owners as
        select coalesce(persons.person_key, 'subject:' || closers.subject_key) as owner, closers.purpose_code,
            closers.effective_at
        from purge_closers as closers
        left join purge_subject_persons as persons
            on closers.subject_key = persons.subject_key
        union all
        select 'subject:' || subject_key, purpose_code, effective_at
        from purge_closers
        """
    )
    purger.sql(
        """
        create or replace temp table purge_grant_owners as
        select
            events.row_id,
            coalesce(persons.person_key, 'subject:' || events.subject_key) as owner,
            events.purpose_code,
            events.effective_at
        from purge_consent_events as events
        left join purge_subject_persons as persons
            on events.subject_key = persons.subject_key and persons.is_unambiguous
        where events.is_interpretable and events.action = 'grant'
        """
    )
    cutoff = purger.cutoff("consent_records")
    purger.add_rule(
        Rule(
            "privacy.consent_events",
            "consent_records",
            "consent_episode_expired",
            "delete_rows",
        ),
        """
        select events.row_id, events._batch_id, events.effective_at, null, null
        from purge_consent_events as events
        where
            events.is_interpretable
            and events.action = 'withdraw'
            and events.effective_at < ?
        union all
        select events.row_id, events._batch_id, events.effective_at, null, null
        from purge_consent_events as events
        where
            events.is_interpretable
            and events.action = 'grant'
            and not exists (
                select 1
                from purge_grant_owners as owners
                where
                    owners.row_id = events.row_id
                    and not exists (
                        select 1
                        from purge_closer_owners as closers
                        where
                            closers.owner = owners.owner
                            and closers.purpose_code = owners.purpose_code
                            and closers.effective_at >= owners.effective_at
                            and closers.effective_at < ?
                    )
            )
        """,
        [cutoff, cutoff],
    )
    # Rows staging cannot interpret (no valid subject, purpose or action) prove nothing:
    # they expire from their own time.
    purger.add_rule(
        Rule("privacy.consent_events", "consent_records", "retention_expired", "delete_rows"),
        """
        select row_id, _batch_id, effective_at, null, null
        from purge_consent_events
        where not is_interpretable and effective_at < ?
        """,
        [cutoff],
    )
