"""Consent scopes: what the warehouse judged per person, kept as proof while it counts.

A withdrawal (consent log, unsubscribe, complaint, objection) and a restriction or erasure
request are judged per person: they reach every identifier of the person, as the identity
graph stood; a grant through an identifier several persons share counts for none of them.
The graph rests on evidence that expires sooner than consent records (site events after 13
months, messages after 2 years, an inactive customer's CRM rows): once the purge destroys
the only evidence that tied a cookie to a customer, or that showed a mailbox shared, the
rebuilt graph splits or un-shares, and the verdict would change: consent given back.

So the purge keeps, in the same transaction as the destruction and before it, each verdict's
*scope* in ``audit.consent_scopes`` of the raw zone: one row per judged event and identifier
pseudonym (``withdrawal``: the identifiers of each person the withdrawal reached, when more
than one; ``restriction``: likewise for a request; ``ambiguous_grant``: the grant's shared
identifier). It is consent proof, category ``consent_records``: a withdrawal's scope is kept
exactly as long as the withdrawal counts (``event_at`` + the consent records' period) and
destroyed with it; a restriction's or an ambiguous grant's while its request or grant is;
all of a person's with their erasure. It holds identity-domain pseudonyms, the warehouse's
own keyed event ids and codes only: no plaintext, no unkeyed hash. The consent ledger reads
it back (``stg_rights__consent_scopes``), and this purge counts a kept withdrawal scope as a
closer of its members' episodes. A scope only ever takes consent away: it never joins persons
for a grant, the profile, audiences or activity (docs/decisions.md, 71).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from cdp.purge.core import AUDIT_SCHEMA, Purger, Rule

SCOPE_TABLE: Final = f"{AUDIT_SCHEMA}.consent_scopes"
SCOPE_REASON: Final = "consent_scope_kept"
#: What a scope proves: a withdrawal (or an opt-out) reached these identifiers; a restriction
#: or erasure request excluded them; a grant made through an identifier shared by several
#: persons counted for none of them (its identifier is the one member).
SCOPE_KINDS: Final = ("withdrawal", "restriction", "ambiguous_grant")
SCOPE_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("scope_kind", "VARCHAR NOT NULL"),
    ("event_id", "VARCHAR NOT NULL"),
    ("purpose_code", "VARCHAR"),
    ("event_at", "TIMESTAMP"),
    ("member_id_type", "VARCHAR NOT NULL"),
    ("member_key", "VARCHAR NOT NULL"),
    ("run_id", "VARCHAR NOT NULL"),
    ("recorded_at", "TIMESTAMP NOT NULL"),
    ("keep_until", "TIMESTAMP"),
)
_SCOPE_FIELDS: Final = "scope_kind, event_id, purpose_code, event_at, member_id_type, member_key"
_EMPTY: Final = """
    select
        cast(null as varchar) as scope_kind,
        cast(null as varchar) as event_id,
        cast(null as varchar) as purpose_code,
        cast(null as timestamp) as event_at,
        cast(null as varchar) as member_id_type,
        cast(null as varchar) as member_key
    where false
"""


def plan_scopes(purger: Purger) -> None:
    """purge_kept_scopes (what earlier runs kept), purge_new_scopes (what this run keeps) and
    purge_scopes (both, what this run's consent rule counts as closers); the expiry rules."""
    kept = purger.has_table("consent_scopes")
    purger.sql(
        "create or replace temp table purge_kept_scopes as "
        + (f"select {_SCOPE_FIELDS} from {SCOPE_TABLE}" if kept else _EMPTY)
    )
    cutoff = purger.cutoff("consent_records")
    if purger.has_person_events:
        purger.sql(
            """
            create or replace temp table purge_new_scopes as
            with
            -- each withdrawal the warehouse counts, for each person it was attributed to
            withdrawals as (
                select distinct
                    'withdrawal' as scope_kind,
                    consent_event_id as event_id,
                    purpose_code,
                    effective_at as event_at,
                    person_key
                from purge_wh.intermediate.int_consent__person_events
                where action = 'withdraw' and effective_at >= ?
            ),
            -- each restriction or erasure request in effect, for each person it excludes
            restrictions as (
                select distinct
                    'restriction' as scope_kind,
                    request_key as event_id,
                    cast(null as varchar) as purpose_code,
                    restricted_since as event_at,
                    person_key
                from purge_wh.intermediate.int_consent__person_restrictions
            ),
            -- a person's scope: their own identifiers (not a shared mailbox's other persons)
            members as (
                select distinct
                    judged.scope_kind,
                    judged.event_id,
                    judged.purpose_code,
                    judged.event_at,
                    persons.subject_id_type as member_id_type,
                    persons.subject_key as member_key
                from (select * from withdrawals union all select * from restrictions) as judged
                inner join purge_subject_persons as persons
                    on judged.person_key = persons.person_key
                where persons.is_unambiguous
            ),
            wide as (
                select scope_kind, event_id, purpose_code
                from members
                group by all
                having count(distinct member_key) > 1
            ),
            -- a grant through an identifier shared by several persons counts for none of them;
            -- the evidence that it was shared may go, the verdict stays with the grant
            ambiguous_grants as (
                select distinct
                    'ambiguous_grant' as scope_kind,
                    events.consent_event_key as event_id,
                    events.purpose_code,
                    events.captured_at as event_at,
                    events.subject_id_type as member_id_type,
                    events.subject_key as member_key
                from purge_wh.staging.stg_privacy__consent_events as events
                inner join purge_subject_persons as persons
                    on events.subject_key = persons.subject_key
                where events.action = 'grant' and not persons.is_unambiguous
            ),
            scopes as (
                select members.*
                from members
                inner join wide
                    on members.scope_kind = wide.scope_kind
                    and members.event_id = wide.event_id
                    and members.purpose_code is not distinct from wide.purpose_code
                union all
                select * from ambiguous_grants
            )
            select distinct scopes.*
            from scopes
            where not exists (
                select 1 from purge_kept_scopes as kept
                where
                    kept.scope_kind = scopes.scope_kind
                    and kept.event_id = scopes.event_id
                    and kept.purpose_code is not distinct from scopes.purpose_code
                    and kept.member_key = scopes.member_key
            )
            """,
            [cutoff],
        )
    else:
        purger.sql("create or replace temp table purge_new_scopes as " + _EMPTY)
    purger.sql(
        """
        create or replace temp table purge_scopes as
        select * from purge_kept_scopes
        union
        select * from purge_new_scopes
        """
    )
    if not kept:
        return
    # A withdrawal's scope is kept exactly as long as the withdrawal counts: the ledger leaves
    # it out from then on, and the consent rule destroys it and the grants it closed in this
    # same run.
    purger.add_rule(
        Rule(SCOPE_TABLE, "consent_records", "retention_expired", "delete_rows"),
        f"""
        select rowid, run_id, event_at, null, null
        from {SCOPE_TABLE}
        where scope_kind = 'withdrawal' and event_at < ?
        """,
        [cutoff],
    )
    # A restriction's or an ambiguous grant's scope is kept as long as its request or grant:
    # gone from the warehouse (destroyed by an earlier run, the warehouse rebuilt since), it goes.
    if purger.has_person_events:
        purger.add_rule(
            Rule(SCOPE_TABLE, "consent_records", "scope_event_destroyed", "delete_rows"),
            f"""
            select scopes.rowid, scopes.run_id, scopes.event_at, null, null
            from {SCOPE_TABLE} as scopes
            where
                (
                    scopes.scope_kind = 'restriction'
                    and scopes.event_id not in (
                        select request_key
                        from purge_wh.intermediate.int_consent__person_restrictions
                    )
                )
                or (
                    scopes.scope_kind = 'ambiguous_grant'
                    and scopes.event_id not in (
                        select consent_event_key
                        from purge_wh.staging.stg_privacy__consent_events
                    )
                )
            """,
        )


def plan_scope_erasure(purger: Purger) -> None:
    """An erased person's scopes go with them: every kept scope row of an event whose scope
    holds one of their identifiers (after plan_erasure made purge_erased_keys)."""
    if not purger.has_temp("purge_erased_keys"):
        return
    # This run keeps no new scope of an erased person's withdrawals.
    purger.sql(
        """
        delete from purge_new_scopes as scopes
        where exists (
            select 1
            from purge_new_scopes as touched
            inner join purge_erased_keys as erased
                on touched.member_key = erased.subject_key
            where
                touched.scope_kind = scopes.scope_kind
                and touched.event_id = scopes.event_id
                and touched.purpose_code is not distinct from scopes.purpose_code
        )
        """
    )
    if not purger.has_table("consent_scopes"):
        return
    purger.add_rule(
        Rule(SCOPE_TABLE, "consent_records", "erasure_request", "delete_rows"),
        f"""
        select scopes.rowid, scopes.run_id, scopes.event_at, 'person', erased.person_key,
            erased.request_id
        from {SCOPE_TABLE} as scopes
        inner join (
            select distinct touched.scope_kind, touched.event_id, touched.purpose_code,
                erased.person_key, erased.request_id
            from {SCOPE_TABLE} as touched
            inner join purge_erased_keys as erased
                on touched.member_key = erased.subject_key
            qualify row_number() over (
                partition by touched.scope_kind, touched.event_id, touched.purpose_code
                order by erased.person_key
            ) = 1
        ) as erased
            on scopes.scope_kind = erased.scope_kind
            and scopes.event_id = erased.event_id
            and scopes.purpose_code is not distinct from erased.purpose_code
        """,
        with_request=True,
    )


def new_scope_rows(purger: Purger) -> int:
    rows = purger.sql("select count(*) from purge_new_scopes").fetchall()
    return int(rows[0][0]) if rows else 0


def write_scopes(purger: Purger, run_id: str, recorded_at: dt.datetime) -> None:
    """Append this run's new scopes (the caller's transaction). A withdrawal's scope is kept
    until the withdrawal expires; the others while their request or grant exists (null)."""
    columns = ",\n    ".join(f"{name} {ctype}" for name, ctype in SCOPE_COLUMNS)
    purger.sql(f"create table if not exists {SCOPE_TABLE} (\n    {columns}\n)")
    days = purger.categories["consent_records"].retention_days
    purger.sql(
        f"""
        insert into {SCOPE_TABLE} ({", ".join(name for name, _ in SCOPE_COLUMNS)})
        select {_SCOPE_FIELDS}, ?, ?,
            case when scope_kind = 'withdrawal' then event_at + to_days(?) end
        from purge_new_scopes
        """,
        [run_id, recorded_at, days],
    )
