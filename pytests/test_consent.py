"""Consent ledger, purposes and retention, on real dbt builds.

- A person whose withdrawal is in the landing zone is absent from the profile
  and from the purpose's audiences after the next build: on generated data
  (checked against the generator's ground truth) and on hand-made late,
  duplicated, tied and clock-skewed events.
- Changing ``as_of`` changes who is in, exactly as the intervals say.
- The consent_presence and within_retention tests fail when fed a violating
  row, and pass on the built project.
- ``as_of`` is validated: anything but an ISO date or timestamp stops the run.

Builds here run on copies of the session's built workspace (same key), so the
shared build is never modified.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import keys, normalise, pseudonym
from conftest import DbtResult, Workspace, copy_workspace, query, run_ok, write

pytestmark = pytest.mark.dbt

AS_OF = "2026-11-15T00:00:00"
AS_OF_TS = dt.datetime(2026, 11, 15)
MY_MODELS = "path:models/intermediate/consent+"
MARKETING = {
    "email_marketing": "marts.rpt_email_audience",
    "sms_marketing": "marts.rpt_sms_audience",
    "push_marketing": "marts.rpt_push_audience",
}
PURPOSE_OUTPUTS = {"personalisation": "marts.dim_customer_profile", **MARKETING}


# --------------------------------------------------------------------------- helpers


def as_of_vars(as_of: str) -> str:
    return "{as_of: '" + as_of + "'}"


def customer_key_function(workspace: Workspace) -> Any:
    """Python: raw customer id -> the customer_key staging computes (same key, same rule)."""
    master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
    key = keys.pseudonym_key(master, "identity")

    def customer_key(customer_id: str | None) -> str | None:
        value = normalise.normalise_identifier("customer_id", customer_id)
        return pseudonym.pseudonym(key, master.version, "customer_id", value)

    return customer_key


def members(db: Path, relation: str) -> set[str]:
    return {row[0] for row in query(db, f"select person_key from {relation}")}


def persons_with_raw_customer_ids(workspace: Workspace, relation: str) -> dict[str, str]:
    """person_key -> one raw customer id of that person, for persons in ``relation``."""
    customer_key = customer_key_function(workspace)
    raw_ids = [
        r[0] for r in query(workspace.raw_db, "select distinct customer_id from crm.customers")
    ]
    by_key = {customer_key(c): c for c in raw_ids if c is not None}
    found: dict[str, str] = {}
    for person_key, subject_key in query(
        workspace.warehouse_db,
        f"""
        select persons.person_key, persons.subject_key
        from intermediate.int_consent__subject_persons as persons
        inner join {relation} as output on persons.person_key = output.person_key
        where persons.subject_id_type = 'customer_id' and persons.is_unambiguous
        order by all
        """,
    ):
        if subject_key in by_key and person_key not in found:
            found[person_key] = by_key[subject_key]
    return found


# --------------------------------------------------------------------------- generated data


def test_withdrawals_in_the_landing_zone_empty_profile_and_audiences(built: Workspace) -> None:
    """Ground truth: every person whose latest consent event for a purpose is a withdrawal
    (by capture time, withdrawal winning ties) is absent from that purpose's output."""
    customer_key = customer_key_function(built)
    con = duckdb.connect(str(built.warehouse_db), read_only=True)
    try:
        con.execute(f"attach '{built.raw_db}' as raw (read_only)")
        con.execute(f"attach '{built.truth_db}' as truth (read_only)")
        con.create_function("customer_key", customer_key, ["VARCHAR"], "VARCHAR")
        event_key = built.record_keys("consent_event_id")
        con.create_function("consent_event_key", event_key, ["VARCHAR"], "VARCHAR")
        as_of = con.execute(
            "select max(as_of) from intermediate.int_consent__person_ledger"
        ).fetchone()
        assert as_of is not None and as_of[0] is not None
        con.execute(
            """
            create temp table truth_person_keys as
            select distinct profiles.person_id, persons.person_key
            from truth.profiles as profiles
            cross join unnest([profiles.customer_id, profiles.alt_customer_id]) as ids (customer_id)
            inner join intermediate.int_consent__subject_persons as persons
                on customer_key(ids.customer_id) = persons.subject_key and persons.is_unambiguous
            """
        )
        # The truth's events of each person, as delivered; kept by staging (a withdrawal
        # whose identifier or purpose was garbled is quarantined and cannot be honoured),
        # and through an identifier the landing zone links to the person at all.
        con.execute(
            """
            create temp table truth_events as
            select
                records.person_id,
                events.purpose_code,
                events.action,
                events.effective_at,
                exists (
                    select 1
                    from intermediate.int_consent__subject_persons as persons
                    inner join truth_person_keys
                        on persons.person_key = truth_person_keys.person_key
                    where
                        persons.subject_key = events.subject_key
                        and truth_person_keys.person_id = records.person_id
                        and persons.link_rule <> 'own_identifier'
                ) as is_linked
            from intermediate.int_consent__subject_events as events
            inner join truth.records as records
                on
                    records.table_name = 'consent_events'
                    and consent_event_key(records.record_key) = events.consent_event_id
            where events.event_origin = 'consent_log'
            """
        )
        checked = 0
        unlinked = 0
        for purpose, relation in PURPOSE_OUTPUTS.items():
            rows = con.execute(
                f"""
                with latest as (
                    select
                        person_id,
                        arg_max(action, (effective_at, case action when 'grant' then 0 else 1 end)) as last_action,
                        bool_and(is_linked) as all_linked
                    from truth_events
                    where purpose_code = ?
                    group by person_id
                ),
                withdrawn as (
                    select latest.person_id, latest.all_linked
                    from latest
                    inner join truth.withdrawals as withdrawals
                        on latest.person_id = withdrawals.person_id and withdrawals.purpose_code = ?
                    where latest.last_action = 'withdraw'
                    group by all
                )
                select
                    withdrawn.person_id,
                    withdrawn.all_linked,
                    count(output.person_key) as rows_in_output
                from withdrawn
                left join truth_person_keys on withdrawn.person_id = truth_person_keys.person_id
                left join {relation} as output on truth_person_keys.person_key = output.person_key
                group by all
                """,
                [purpose, purpose],
            ).fetchall()
            linked = [r for r in rows if r[1]]
            unlinked += len(rows) - len(linked)
            checked += len(linked)
            present = [r[0] for r in linked if r[2] > 0]
            assert present == [], f"{purpose}: withdrawn persons still in {relation}: {present}"
        # The check is not vacuous: the generator's withdrawals reach it, mostly linkable.
        assert checked >= 30, checked
        assert unlinked <= 0.25 * (checked + unlinked), (checked, unlinked)
    finally:
        con.close()


# --------------------------------------------------------------------------- hand-made events


@pytest.fixture(scope="module")
def planted(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A copy of the build with hand-made late, duplicated, tied and clock-skewed consent
    events for four people who were in the profile and the email audience, rebuilt."""
    workspace = copy_workspace(built, tmp_path_factory.mktemp("consent_planted"))
    run_ok(workspace.dbt("run", "--select", MY_MODELS, "--vars", as_of_vars(AS_OF)))
    profile = persons_with_raw_customer_ids(workspace, "marts.dim_customer_profile")
    audience = members(workspace.warehouse_db, "marts.rpt_email_audience")
    chosen = [person for person in sorted(profile) if person in audience][:4]
    assert len(chosen) == 4, "the generated data should have people in profile and email audience"
    late, tie, regrant, skewed = chosen

    def event(
        event_id: str,
        person: str,
        purpose: str,
        action: str,
        captured: str,
        loaded: str,
        batch: str,
    ) -> tuple[Any, ...]:
        return (
            event_id,
            "customer_id",
            f"  {profile[person]} ",
            purpose.upper() if action == "grant" else purpose,
            action,
            "web_form",
            "v9.0",
            f"WF-HAND-{event_id}",
            dt.datetime.fromisoformat(captured),
            dt.datetime.fromisoformat(loaded),
            batch,
        )

    rows = []
    for purpose in ("personalisation", "email_marketing"):
        p = purpose[:4]
        rows += [
            # late: the withdrawal arrives first; a grant captured before it arrives a day later
            event(
                f"{p}-late-w",
                late,
                purpose,
                "withdraw",
                "2026-11-11 10:00",
                "2026-11-11 11:00",
                "hand_1",
            ),
            event(
                f"{p}-late-g",
                late,
                purpose,
                "grant",
                "2026-11-10 10:00",
                "2026-11-12 09:00",
                "hand_2",
            ),
            # the same withdrawal delivered again in the next batch
            event(
                f"{p}-late-w",
                late,
                purpose,
                "withdraw",
                "2026-11-11 10:00",
                "2026-11-12 09:00",
                "hand_2",
            ),
            # tie: grant and withdrawal at the same moment, the grant delivered last
            event(
                f"{p}-tie-w",
                tie,
                purpose,
                "withdraw",
                "2026-11-10 12:00",
                "2026-11-10 13:00",
                "hand_1",
            ),
            event(
                f"{p}-tie-g",
                tie,
                purpose,
                "grant",
                "2026-11-10 12:00",
                "2026-11-12 09:00",
                "hand_2",
            ),
            # re-grant: withdrawal then grant by capture time, delivered the other way round
            event(
                f"{p}-re-g",
                regrant,
                purpose,
                "grant",
                "2026-11-08 10:00",
                "2026-11-09 10:00",
                "hand_1",
            ),
            event(
                f"{p}-re-w",
                regrant,
                purpose,
                "withdraw",
                "2026-11-05 10:00",
                "2026-11-12 09:00",
                "hand_2",
            ),
            # clock skew: a withdrawal "captured" next year, loaded before as_of: it counts from its load
            event(
                f"{p}-skew-w",
                skewed,
                purpose,
                "withdraw",
                "2027-03-01 10:00",
                "2026-11-12 09:00",
                "hand_2",
            ),
        ]
    # An event after as_of (captured and loaded later) is not part of the build.
    rows.append(
        event(
            "pers-future-w",
            regrant,
            "personalisation",
            "withdraw",
            "2026-11-20 10:00",
            "2026-11-20 11:00",
            "hand_3",
        )
    )
    con = duckdb.connect(str(workspace.raw_db))
    try:
        con.executemany(
            "insert into privacy.consent_events values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
    finally:
        con.close()
    # Staging and identity again (the landing zone changed), then the consent models and their tests.
    run_ok(
        workspace.dbt(
            "run",
            "--select",
            "+int_consent__subject_persons",
            MY_MODELS,
            "--vars",
            as_of_vars(AS_OF),
        )
    )
    build = run_ok(
        workspace.dbt(
            "test",
            "--select",
            MY_MODELS,
            "--exclude",
            "test_type:unit",
            "--vars",
            as_of_vars(AS_OF),
        )
    )
    yield {
        "workspace": workspace,
        "late": late,
        "tie": tie,
        "regrant": regrant,
        "skewed": skewed,
        "build": build,
    }


def test_out_of_order_withdrawals_remove_people_regrant_keeps_them(planted: dict[str, Any]) -> None:
    db = planted["workspace"].warehouse_db
    profile = members(db, "marts.dim_customer_profile")
    email = members(db, "marts.rpt_email_audience")
    for who in ("late", "tie", "skewed"):
        assert planted[who] not in profile, who
        assert planted[who] not in email, who
    assert planted["regrant"] in profile
    assert planted["regrant"] in email


def test_ledger_records_the_hand_made_history(planted: dict[str, Any]) -> None:
    db = planted["workspace"].warehouse_db
    # Per person: each planted event went through the person's customer id, and the person
    # had personalisation consent in force before the hand-made history began.
    # Staged consent event ids are keyed pseudonyms (decision 50): name them back.
    workspace = planted["workspace"]
    hand_made = ("late-g", "late-w", "tie-g", "tie-w", "re-w", "re-g", "future-w", "skew-w")
    by_key = {workspace.record_key("consent_event_id", f"pers-{e}"): f"pers-{e}" for e in hand_made}
    events = {
        by_key.get(str(event_id), str(event_id)): effect
        for event_id, effect in query(
            db,
            """
            select consent_event_id, consent_effect
            from intermediate.int_consent__person_events
            where person_key in (?, ?, ?, ?)
            """,
            [planted["late"], planted["tie"], planted["regrant"], planted["skewed"]],
        )
    }
    # Ordered by capture time: the late grant reaffirms, the withdrawal after it closes.
    assert events["pers-late-g"] == "reaffirms_grant"
    assert events["pers-late-w"] == "closes_interval"
    # At the same moment the grant sorts first and the withdrawal wins.
    assert (events["pers-tie-g"], events["pers-tie-w"]) == ("reaffirms_grant", "closes_interval")
    assert (events["pers-re-w"], events["pers-re-g"]) == ("closes_interval", "opens_interval")
    assert "pers-future-w" not in events
    # The duplicate delivery is one event; the skewed one counts from its load time.
    skew = query(
        db,
        """
        select effective_at, is_capture_time_corrected
        from intermediate.int_consent__subject_events
        where consent_event_id = ?
        """,
        [workspace.record_key("consent_event_id", "pers-skew-w")],
    )
    assert skew == [(dt.datetime(2026, 11, 12, 9, 0), True)]
    regrant = query(
        db,
        """
        select valid_from, valid_to, evidence_ref, policy_version
        from intermediate.int_consent__person_ledger
        where person_key = ? and purpose_code = 'personalisation' and is_valid_as_of
        """,
        [planted["regrant"]],
    )
    evidence = workspace.record_key("consent_evidence_ref", "WF-HAND-pers-re-g")
    assert regrant == [(dt.datetime(2026, 11, 8, 10, 0), None, evidence, "v9.0")]


# --------------------------------------------------------------------------- as_of


@pytest.fixture(scope="module")
def two_dates(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The consent models built for two as_of dates on one landing zone."""
    workspace = copy_workspace(built, tmp_path_factory.mktemp("consent_as_of"))
    snapshots: dict[str, Any] = {}
    for as_of in ("2025-06-01", AS_OF):
        run_ok(workspace.dbt("run", "--select", MY_MODELS, "--vars", as_of_vars(as_of)))
        db = workspace.warehouse_db
        snapshots[as_of] = {
            "profile": members(db, "marts.dim_customer_profile"),
            "email": members(db, "marts.rpt_email_audience"),
            "as_of": query(db, "select distinct as_of from marts.dim_customer_profile"),
            "permitted": set(
                query(
                    db,
                    "select person_key, purpose_code from intermediate.int_consent__person_purposes "
                    "where is_permitted",
                )
            ),
            "restricted": {
                r[0]
                for r in query(
                    db, "select person_key from intermediate.int_consent__person_restrictions"
                )
            },
            "active": {
                r[0]
                for r in query(
                    db,
                    "select person_key from intermediate.int_consent__person_activity where is_active",
                )
            },
        }
    snapshots["ledger"] = query(
        workspace.warehouse_db,
        "select person_key, purpose_code, valid_from, valid_to from intermediate.int_consent__person_ledger",
    )
    return snapshots


def test_as_of_changes_who_is_in_exactly_as_the_intervals_say(two_dates: dict[str, Any]) -> None:
    ledger = two_dates["ledger"]  # built as of AS_OF: every interval known then
    early, late = two_dates["2025-06-01"], two_dates[AS_OF]
    assert early["as_of"] == [(dt.datetime(2025, 6, 1),)]
    assert late["as_of"] == [(AS_OF_TS,)]

    def consented_at(moment: dt.datetime, purpose: str) -> set[str]:
        return {
            person
            for person, code, valid_from, valid_to in ledger
            if code == purpose and valid_from <= moment and (valid_to is None or valid_to > moment)
        }

    for snapshot, moment in ((early, dt.datetime(2025, 6, 1)), (late, AS_OF_TS)):
        for purpose, output in (("personalisation", "profile"), ("email_marketing", "email")):
            expected = consented_at(moment, purpose) - snapshot["restricted"]
            permitted = {p for p, code in snapshot["permitted"] if code == purpose}
            # Consent as of a date is exactly the intervals that hold at that date.
            assert permitted == expected, purpose
            # Whoever is in the output at that date is consented then, and active then.
            assert snapshot[output] <= expected & snapshot["active"], purpose
        assert (
            snapshot["profile"]
            == consented_at(moment, "personalisation") & snapshot["active"] - snapshot["restricted"]
        )
    # The membership really moves with the date, both ways.
    left = early["profile"] - late["profile"]
    joined = late["profile"] - early["profile"]
    assert left and joined, (len(left), len(joined))
    withdrawn_between = {
        person
        for person, code, valid_from, valid_to in ledger
        if code == "personalisation"
        and valid_to is not None
        and dt.datetime(2025, 6, 1) < valid_to <= AS_OF_TS
    }
    assert withdrawn_between & left


# --------------------------------------------------------------------------- tests of the tests


@pytest.fixture(scope="module")
def checked(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = copy_workspace(built, tmp_path_factory.mktemp("consent_checked"))
    run_ok(workspace.dbt("run", "--select", MY_MODELS, "--vars", as_of_vars(AS_OF)))
    return workspace


def generic_test(workspace: Workspace, model: str, test_name: str) -> DbtResult:
    return workspace.dbt(
        "test", "--select", f"{model},test_name:{test_name}", "--vars", as_of_vars(AS_OF)
    )


def test_consent_and_retention_tests_pass_on_the_build(built: Workspace) -> None:
    result = built.dbt(
        "test",
        "--select",
        "test_name:consent_presence",
        "test_name:within_retention",
        "path:tests/marts",
        "path:tests/intermediate",
    )  # the consent models' unit tests ran in the session build (test_stages checks them)
    assert result.success, result.output[-3000:]
    assert "consent_presence_dim_customer_profile" in result.output
    assert "within_retention_fct_profile_events" in result.output


def planted_violation(
    workspace: Workspace, model: str, test_name: str, insert_sql: str, params: list[Any]
) -> DbtResult:
    """Run ``test_name`` on ``model`` before (must pass), with a planted row (returned), and after."""
    assert generic_test(workspace, model, test_name).success
    table = f"marts.{model}"
    write(workspace.warehouse_db, f"create table main.planted_backup as select * from {table}")
    try:
        write(workspace.warehouse_db, insert_sql.format(table=table), params)
        dirty = generic_test(workspace, model, test_name)
    finally:
        write(workspace.warehouse_db, f"delete from {table}")
        write(workspace.warehouse_db, f"insert into {table} select * from main.planted_backup")
        write(workspace.warehouse_db, "drop table main.planted_backup")
    assert generic_test(workspace, model, test_name).success
    return dirty


def withdrawn_person(workspace: Workspace, purpose: str) -> str:
    rows = query(
        workspace.warehouse_db,
        """
        select person_key from intermediate.int_consent__person_purposes
        where purpose_code = ? and not is_consented and last_withdrawn_at is not null
        order by person_key limit 1
        """,
        [purpose],
    )
    assert rows, f"the generated data should hold a withdrawn {purpose} consent"
    return str(rows[0][0])


def test_consent_presence_fails_for_a_withdrawn_person_in_the_profile(checked: Workspace) -> None:
    person = withdrawn_person(checked, "personalisation")
    dirty = planted_violation(
        checked,
        "dim_customer_profile",
        "consent_presence",
        "insert into {table} by name select ? as person_key, 'no_orders' as rfm_segment, "
        "timestamp '2026-11-01' as last_activity_at",
        [person],
    )
    assert not dirty.success
    assert "consent_presence_dim_customer_profile" in dirty.output


def test_consent_presence_fails_for_an_unsubscribed_person_in_an_audience(
    checked: Workspace,
) -> None:
    rows = query(
        checked.warehouse_db,
        """
        select person_key from intermediate.int_consent__person_purposes
        where purpose_code = 'email_marketing' and not is_permitted
            and last_withdrawal_origin in ('unsubscribe', 'complaint', 'objection')
        order by person_key limit 1
        """,
    )
    person = rows[0][0] if rows else withdrawn_person(checked, "email_marketing")
    dirty = planted_violation(
        checked,
        "rpt_email_audience",
        "consent_presence",
        "insert into {table} by name select ? as person_key, 'v1_planted' as contact_key",
        [person],
    )
    assert not dirty.success
    assert "consent_presence_rpt_email_audience" in dirty.output


def test_consent_presence_fails_for_an_event_before_consent(checked: Workspace) -> None:
    """Event level: the person is consented now, but the event predates the consent."""
    rows = query(
        checked.warehouse_db,
        """
        select person_key, consent_valid_from from intermediate.int_consent__profiled_persons
        order by person_key limit 1
        """,
    )
    person, valid_from = rows[0]
    dirty = planted_violation(
        checked,
        "fct_profile_events",
        "consent_presence",
        "insert into {table} by name select 'site:planted' as profile_event_id, ? as person_key, "
        "'site' as event_source, 'planted' as event_key, ? as event_at, 'site_activity' as data_category",
        [person, valid_from - dt.timedelta(seconds=1)],
    )
    assert not dirty.success
    assert "consent_presence_fct_profile_events" in dirty.output


def test_within_retention_fails_for_an_expired_row(checked: Workspace) -> None:
    rows = query(
        checked.warehouse_db,
        "select person_key, consent_valid_from from intermediate.int_consent__profiled_persons "
        "where consent_valid_from < ? order by person_key limit 1",
        [AS_OF_TS - dt.timedelta(days=400)],
    )
    assert rows, "a profiled person whose consent is older than the site-activity window"
    person, _ = rows[0]
    # Consented at the event time (so only retention is wrong): 396 days before as_of.
    dirty = planted_violation(
        checked,
        "fct_profile_events",
        "within_retention",
        "insert into {table} by name select 'site:expired' as profile_event_id, ? as person_key, "
        "'site' as event_source, 'expired' as event_key, ? as event_at, 'site_activity' as data_category",
        [person, AS_OF_TS - dt.timedelta(days=396)],
    )
    assert not dirty.success
    assert "within_retention_fct_profile_events" in dirty.output
    stale = planted_violation(
        checked,
        "dim_customer_profile",
        "within_retention",
        "insert into {table} by name select 'v1_stale' as person_key, 'no_orders' as rfm_segment, "
        "? as last_activity_at",
        [AS_OF_TS - dt.timedelta(days=1096)],
    )
    assert not stale.success
    assert "within_retention_dim_customer_profile" in stale.output


# --------------------------------------------------------------------------- as_of validation


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"2026-02-30"', "no such day"),
        ('"yesterday"', "as_of must be an ISO 8601 date"),
        ('"2026-11-01\'; drop table x; --"', "as_of must be an ISO 8601 date"),
        ('"2026-11-01T25:00"', "out of range"),
    ],
)
def test_as_of_must_be_an_iso_date(checked: Workspace, value: str, problem: str) -> None:
    result = checked.dbt(
        "compile", "--select", "int_consent__person_ledger", "--vars", "{as_of: " + value + "}"
    )
    assert not result.success
    assert problem in result.output


def test_as_of_offsets_are_converted_to_utc(checked: Workspace) -> None:
    result = run_ok(
        checked.dbt(
            "compile",
            "--select",
            "int_consent__person_ledger",
            "--vars",
            '{as_of: "2026-11-01T12:30:00+03:00"}',
        )
    )
    compiled = next((checked.root / "target" / "compiled").rglob("int_consent__person_ledger.sql"))
    text = compiled.read_text()
    assert "cast('2026-11-01 09:30:00.000000' as timestamp)" in text
    assert "+03:00" not in text
    assert result.success
