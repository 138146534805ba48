"""Data-subject rights end to end (issue 6), on a copy of the session's generated build.

One module fixture plants requests into the landing zone as the privacy desk
would (erasure, restriction, objection, rectification, unverified erasure,
hostile subject ids) and rebuilds what depends on them; a second runs the
purge and a full rebuild for the erasure scan.

- Erasure: excluded from every output at the next build; after the purge and
  a rebuild, a scan of every database file and artefact finds none of the
  person's identifiers, normalised forms or pseudonyms, except the erasure
  request itself (kept under a legal obligation) and the minimised orders.
- Access: the export of a generated person holds every raw row the ground
  truth attributes to them, and no row of anyone else.
- Restriction, objection, rectification: each end to end.
- Request tracking: due dates in working days, unverified requests reported.
- Hostile subject ids are handled as data, never as SQL: kept, tracked for review.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import access, keys, normalise, pseudonym
from cdp import purge as purge_module
from cdp.purge import purge
from conftest import ROOT, Workspace, copy_workspace, query, run_ok

pytestmark = pytest.mark.dbt

RECEIVED_AT = dt.datetime(2026, 10, 28, 9, 0)
LOADED_AT = dt.datetime(2026, 10, 28, 10, 0)
BATCH = "rights_test"
REQUESTS_AND_DEPENDANTS = "stg_privacy__subject_requests_triaged+"
HOSTILE_IDS = (
    "x'); drop table crm.customers; --",
    "' or 1=1 --",
    '"; delete from privacy.subject_requests; --',
    "a" * 100_000,
    "\u03a9\u2248\u00e7\u221a\u02dc\u00b5 \U0001f600 \u202e\u0000 z",
    "{{ env_var('CDP_MASTER_KEY') }}",
    "CRM-00000001' union select * from crm.customers --",
)


@dataclass
class Person:
    person_id: str
    customer_id: str
    person_key: str
    identifiers: dict[str, set[str]] = field(default_factory=dict)  # type -> raw values (truth)


@dataclass
class Planted:
    workspace: Workspace
    erased: Person
    restricted: Person
    objector: Person
    rectifier: Person
    unverified: Person
    new_email: str
    identity_key: bytes
    version: str
    person_key_before: dict[str, str] = field(default_factory=dict)

    def key(self, id_type: str, value: str) -> str | None:
        normalised = normalise.normalise_identifier(id_type, value)
        if normalised is None:
            return None
        return pseudonym.pseudonym(self.identity_key, self.version, id_type, normalised)


def _clean_persons(ws: Workspace, identity_key: bytes, version: str) -> list[Person]:
    """Generated persons whose identifiers are theirs alone (in truth and in the warehouse),
    who have a CRM record, orders, site events and consent events, and no request yet."""
    truth = ws.truth_db
    rows = query(
        truth,
        """
        with owners as (
            select id_type, value, count(distinct person_id) as owners
            from identifiers group by all
        ),
        clean as (
            select person_id from identifiers
            inner join owners using (id_type, value)
            group by person_id
            having max(owners) = 1
                and count(*) filter (where id_type = 'customer_id') = 1
        ),
        activity as (
            select person_id,
                count(*) filter (where table_name = 'orders') as orders,
                count(*) filter (where table_name = 'events') as events,
                count(*) filter (where table_name = 'consent_events') as consents,
                count(*) filter (where table_name = 'subject_requests') as requests
            from records group by person_id
        )
        select clean.person_id
        from clean inner join activity using (person_id)
        where orders > 0 and events > 0 and consents > 0 and requests = 0
        order by clean.person_id
        """,
    )
    persons: list[Person] = []
    subject_persons: dict[str, set[tuple[str, bool]]] = {}
    for subject_key, person_key, unambiguous in query(
        ws.warehouse_db,
        "select subject_key, person_key, is_unambiguous from intermediate.int_consent__subject_persons",
    ):
        subject_persons.setdefault(str(subject_key), set()).add(
            (str(person_key), bool(unambiguous))
        )
    for (person_id,) in rows:
        identifiers: dict[str, set[str]] = {}
        for id_type, value in query(
            truth, "select id_type, value from identifiers where person_id = ?", [person_id]
        ):
            identifiers.setdefault(str(id_type), set()).add(str(value))
        owners: set[tuple[str, bool]] = set()
        for id_type, values in identifiers.items():
            for value in values:
                normalised = normalise.normalise_identifier(id_type, value)
                if normalised is None:
                    continue
                key = pseudonym.pseudonym(identity_key, version, id_type, normalised)
                owners |= subject_persons.get(key or "", {("missing", False)})
        if len(owners) != 1 or not next(iter(owners))[1]:
            continue  # identity resolution split or shared this person: not a clean example
        (customer_id,) = identifiers["customer_id"]
        persons.append(Person(str(person_id), customer_id, next(iter(owners))[0], identifiers))
    return persons


def _insert_requests(raw_db: Path, rows: list[tuple[Any, ...]]) -> None:
    con = duckdb.connect(str(raw_db))
    try:
        con.executemany(
            "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
            "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, _batch_id) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, LOADED_AT, BATCH) for row in rows],
        )
    finally:
        con.close()


def profiled_persons(ws: Workspace) -> tuple[list[Person], set[str], set[str]]:
    """The clean persons of a built workspace, and the person keys in the profile and the
    email audience."""
    master = keys.load_master_key({"CDP_MASTER_KEY": ws.key})
    persons = _clean_persons(ws, keys.pseudonym_key(master, "identity"), master.version)
    profiled = {
        r[0] for r in query(ws.warehouse_db, "select person_key from marts.dim_customer_profile")
    }
    emailed = {
        r[0] for r in query(ws.warehouse_db, "select person_key from marts.rpt_email_audience")
    }
    return persons, profiled, emailed


@pytest.fixture(scope="module")
def planted(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    ws = copy_workspace(built, tmp_path_factory.mktemp("rights"))
    master = keys.load_master_key({"CDP_MASTER_KEY": ws.key})
    identity_key = keys.pseudonym_key(master, "identity")
    persons, profiled, emailed = profiled_persons(ws)
    in_both = [p for p in persons if p.person_key in profiled and p.person_key in emailed]
    in_profile = [p for p in persons if p.person_key in profiled and p not in in_both]
    assert len(in_both) >= 3 and len(in_profile) >= 2, (len(in_both), len(in_profile))
    erased, unverified = in_profile[0], in_profile[1]
    restricted, objector, rectifier = in_both[0], in_both[1], in_both[2]
    new_email = "Rectified.Address+dsr@Example.ORG"
    requests: list[tuple[Any, ...]] = [
        ("DSR-T-ERASE", "customer_id", erased.customer_id, "erasure", "RU", RECEIVED_AT, "{}", True),
        ("DSR-T-RESTRICT", "customer_id", restricted.customer_id, "restriction", "EU", RECEIVED_AT, "{}", True),
        ("DSR-T-OBJECT", "customer_id", objector.customer_id, "objection", "RU", RECEIVED_AT,
         '{"purpose_code": "email_marketing"}', True),
        ("DSR-T-RECTIFY", "customer_id", rectifier.customer_id, "rectification", "RU", RECEIVED_AT,
         json.dumps({"field": "email", "value": new_email}), True),
        ("DSR-T-UNVERIFIED", "customer_id", unverified.customer_id, "erasure", "RU", RECEIVED_AT, "{}", False),
    ]  # fmt: skip
    for number, hostile in enumerate(HOSTILE_IDS):
        for id_type in ("customer_id", "email", "phone", "anonymous_id"):
            requests.append(
                (f"DSR-T-HOSTILE-{number}-{id_type}", id_type, hostile, "erasure", "RU",
                 RECEIVED_AT, hostile, True)
            )  # fmt: skip
    requests.append(
        (
            HOSTILE_IDS[0],
            "customer_id",
            objector.customer_id,
            "access",
            "EU",
            RECEIVED_AT,
            "{}",
            True,
        )
    )
    _insert_requests(ws.raw_db, requests)
    run_ok(ws.dbt("run", "--select", REQUESTS_AND_DEPENDANTS, "vault_identifiers"))
    yield Planted(
        workspace=ws,
        erased=erased,
        restricted=restricted,
        objector=objector,
        rectifier=rectifier,
        unverified=unverified,
        new_email=new_email,
        identity_key=identity_key,
        version=master.version,
    )


def persons_in(ws: Workspace, model: str) -> set[str]:
    return {str(r[0]) for r in query(ws.warehouse_db, f"select person_key from {model}")}


OUTPUTS = (
    "marts.dim_customer_profile",
    "marts.fct_profile_events",
    "marts.rpt_email_audience",
    "marts.rpt_sms_audience",
    "marts.rpt_push_audience",
    "intermediate.int_consent__profiled_persons",
)


def test_restriction_keeps_the_person_but_excludes_them_from_every_output(planted: Planted) -> None:
    ws, person = planted.workspace, planted.restricted
    for model in OUTPUTS:
        assert person.person_key not in persons_in(ws, model), model
    # kept: their staging rows and consent history are still there
    customer_key = planted.key("customer_id", person.customer_id)
    assert (
        query(
            ws.warehouse_db,
            "select count(*) from staging.stg_crm__customers where customer_key = ?",
            [customer_key],
        )[0][0]
        >= 1
    )
    permitted = query(
        ws.warehouse_db,
        "select bool_or(is_consented), bool_or(is_permitted), bool_and(is_restricted) "
        "from intermediate.int_consent__person_purposes where person_key = ?",
        [person.person_key],
    )[0]
    assert permitted == (True, False, True)
    excluded = query(
        ws.warehouse_db,
        "select has_restriction_request, is_to_be_erased from intermediate.int_rights__excluded_persons "
        "where person_key = ?",
        [person.person_key],
    )
    assert excluded == [(True, False)]


def test_objection_removes_the_person_from_that_purpose_only(planted: Planted) -> None:
    ws, person = planted.workspace, planted.objector
    assert person.person_key not in persons_in(ws, "marts.rpt_email_audience")
    assert person.person_key in persons_in(ws, "marts.dim_customer_profile")
    row = query(
        ws.warehouse_db,
        "select is_permitted, last_withdrawal_origin from intermediate.int_consent__person_purposes "
        "where person_key = ? and purpose_code = 'email_marketing'",
        [person.person_key],
    )
    assert row == [(False, "objection")]


def test_rectified_email_is_the_one_the_audience_uses(planted: Planted) -> None:
    ws, person = planted.workspace, planted.rectifier
    new_key = planted.key("email", planted.new_email)
    assert new_key is not None
    old_keys = {planted.key("email", v) for v in person.identifiers.get("email", set())}
    audience = query(
        ws.warehouse_db,
        "select contact_key from marts.rpt_email_audience where person_key = ?",
        [person.person_key],
    )
    assert audience == [(new_key,)]
    assert new_key not in old_keys
    # the vault resolves the new pseudonym, so the delivery processor can send to it
    assert (
        query(
            ws.vault_db,
            "select count(*) from main.vault_identifiers where pseudonym = ?",
            [new_key],
        )[0][0]
        == 1
    )


def test_request_tracking_has_legal_due_dates_and_reports_unverified(planted: Planted) -> None:
    ws = planted.workspace
    rows = {
        str(r[0]): r[1:]
        for r in query(
            ws.warehouse_db,
            "select request_id, request_status, due_date, deadline_unit, closed_by, is_overdue "
            "from intermediate.int_rights__request_tracking where request_id like 'DSR-T-%'",
        )
    }
    received = RECEIVED_AT.date()  # Wednesday 28 October 2026
    # 152-FZ rectification: 7 working days -> Thu 29, Fri 30, Mon 2, Tue 3, Thu 5 (4 Nov is a
    # holiday), Fri 6, Mon 9 November.
    assert rows["DSR-T-RECTIFY"][:4] == ("closed", dt.date(2026, 11, 9), "working_days", "build")
    assert rows["DSR-T-OBJECT"][1] == dt.date(2026, 11, 12)  # 10 working days
    assert rows["DSR-T-RESTRICT"][1] == dt.date(2026, 11, 28)  # GDPR: one month
    assert rows["DSR-T-ERASE"][1] == received + dt.timedelta(days=30)
    assert rows["DSR-T-ERASE"][0] == "awaiting_purge"
    assert rows["DSR-T-UNVERIFIED"][0] == "unverified"
    assert not query(
        ws.warehouse_db,
        "select count(*) from intermediate.int_rights__erased_persons where request_id = 'DSR-T-UNVERIFIED'",
    )[0][0]
    # excluded all the same (decision 14), but not destroyed
    assert planted.unverified.person_key not in persons_in(ws, "marts.dim_customer_profile")


def test_overdue_requests_are_flagged_and_the_build_warns(planted: Planted) -> None:
    ws = planted.workspace
    # Built as of now (after 29 Nov 2026): the erasure received 28 Oct 2026 (due in 30 days)
    # is past due until the purge runs; the closed rectification is not overdue.
    flags = dict(
        query(
            ws.warehouse_db,
            "select request_id, is_overdue from intermediate.int_rights__request_tracking "
            "where request_id in ('DSR-T-ERASE', 'DSR-T-RECTIFY')",
        )
    )
    assert flags == {"DSR-T-ERASE": True, "DSR-T-RECTIFY": False}
    overdue = query(
        ws.warehouse_db,
        "select count(*) from intermediate.int_rights__request_tracking where is_overdue",
    )[0][0]
    result = ws.dbt("test", "--select", "rights_request_is_not_overdue")
    assert result.success  # a warning, not an error
    run_results = json.loads((ws.root / "target" / "run_results.json").read_text(encoding="utf-8"))
    (warned,) = [
        r for r in run_results["results"] if "rights_request_is_not_overdue" in r["unique_id"]
    ]
    assert warned["status"] == "warn"
    assert warned["failures"] == overdue >= 1


def test_hostile_subject_ids_are_data_not_sql(planted: Planted) -> None:
    ws = planted.workspace
    # every planted hostile request is kept (a request is a person's right, decision 51): an
    # identifier that is not valid for its type is flagged and not pseudonymised, an odd
    # customer id is still a customer id; none names a known person, so each is tracked as
    # needing review, never executed or closed
    triaged = query(
        ws.warehouse_db,
        "select request_id, row_status, reject_reason, subject_issue, subject_key "
        "from staging.stg_privacy__subject_requests_triaged where request_id like 'DSR-T-HOSTILE-%'",
    )
    assert len(triaged) == len(HOSTILE_IDS) * 4
    assert all(status == "kept" and reason is None for _, status, reason, _, _ in triaged), triaged
    assert all((issue is None) == (key is not None) for _, _, _, issue, key in triaged), triaged
    assert {issue for *_, issue, _ in triaged} >= {None, "invalid_identifier"}
    kept = sorted(r[0] for r in triaged)
    tracked = query(
        ws.warehouse_db,
        "select request_status, count(*) from intermediate.int_rights__request_tracking "
        "where request_id in (select unnest(?)) group by all",
        [kept],
    )
    assert tracked == [("needs_review", len(kept))]
    # the hostile *request id* is a kept request with its own tracking row
    assert (
        query(
            ws.warehouse_db,
            "select count(*) from intermediate.int_rights__request_tracking where request_id = ?",
            [HOSTILE_IDS[0].strip()],
        )[0][0]
        == 1
    )
    # nothing was dropped or deleted by them
    assert query(ws.raw_db, "select count(*) from crm.customers")[0][0] > 0
    # the access command takes them as data: a clear refusal (a request names a person the data
    # holds, it never makes one, so none of these values belongs to anybody)
    for hostile in HOSTILE_IDS:
        with pytest.raises(access.AccessError) as refused:
            access.export(
                id_type="customer_id",
                value=hostile,
                officer="Test Officer",
                reason="DSR-T-HOSTILE check",
                raw_db=ws.raw_db,
                warehouse_db=ws.warehouse_db,
                vault_db=ws.vault_db,
                environ={"CDP_MASTER_KEY": ws.key},
            )
        assert hostile.strip()[:30] not in str(refused.value)
    with pytest.raises(access.AccessError, match="request-id"):
        access.check_request_id(HOSTILE_IDS[0])
    assert query(ws.raw_db, "select count(*) from crm.customers")[0][0] > 0


def _truth_keys(ws: Workspace, person_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for schema, table, key in query(
        ws.truth_db,
        "select schema_name, table_name, record_key from records where person_id = ?",
        [person_id],
    ):
        out.setdefault(f"{schema}.{table}", set()).add(str(key))
    return out


NATURAL_KEYS = {
    "crm.customers": ("customer_id",),
    "web.events": ("event_id",),
    "shop.orders": ("order_id",),
    "shop.order_items": ("order_id", "line_number"),
    "messaging.message_events": ("message_event_id",),
    "privacy.consent_events": ("consent_event_id",),
    "privacy.subject_requests": ("request_id",),
}


def _record_key(table: str, row: dict[str, Any]) -> str:
    parts = [str(row[c]).strip() for c in NATURAL_KEYS[table]]
    return "#".join(parts)


def test_access_export_holds_every_raw_row_of_the_person_and_nobody_else(
    planted: Planted, tmp_path: Path
) -> None:
    ws, person = planted.workspace, planted.objector
    out = tmp_path / "export.json"
    summary = tmp_path / "summary.txt"
    completed = subprocess.run(
        [sys.executable, "-m", "cdp.access", "export", "--id-type", "customer_id", "--value", "-",
         "--officer", "Test Officer", "--reason", "subject access request DSR-T-ACCESS",
         "--request-id", "DSR-T-ACCESS", "--out", str(out), "--summary", str(summary),
         "--raw-db", str(ws.raw_db), "--warehouse-db", str(ws.warehouse_db),
         "--vault-db", str(ws.vault_db)],
        input=person.customer_id + "\n", capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "CDP_MASTER_KEY": ws.key, "HOME": str(tmp_path)},
        cwd=ROOT, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    data = json.loads(out.read_text(encoding="utf-8"))
    expected = _truth_keys(ws, person.person_id)
    owners: dict[tuple[str, str], str | None] = {
        (f"{s}.{t}", str(k)): p
        for s, t, k, p in query(
            ws.truth_db, "select schema_name, table_name, record_key, person_id from records"
        )
    }
    held_in_raw: dict[str, set[str]] = {}
    for table, columns in NATURAL_KEYS.items():
        keys_sql = " || '#' || ".join(f"trim(cast({c} as varchar))" for c in columns)
        held_in_raw[table] = {
            str(r[0]) for r in query(ws.raw_db, f"select {keys_sql} from {table}")
        }
    checked = 0
    for table in NATURAL_KEYS:
        exported = {_record_key(table, row) for row in data["raw_records"].get(table, [])}
        want = expected.get(table, set()) & held_in_raw[table]
        assert want <= exported, (table, sorted(want - exported)[:5])
        strangers = {
            k for k in exported if owners.get((table, k), person.person_id) != person.person_id
        }
        assert not strangers, (table, sorted(strangers)[:5])
        checked += len(want)
    assert checked >= 20
    assert data["identifiers"] and data["purposes"] and data["consents"]["status"]
    assert {i["type"] for i in data["identifiers"]} >= {"customer_id"}
    assert "Purposes, recipients and retention" in summary.read_text(encoding="utf-8")
    log = query(
        ws.vault_db,
        "select officer, action, outcome, request_id, pseudonym from main.reidentification_log "
        "where request_id = 'DSR-T-ACCESS'",
    )
    assert log == [
        (
            "Test Officer",
            "access_export",
            "ok",
            "DSR-T-ACCESS",
            planted.key("customer_id", person.customer_id),
        )
    ]
    # the log holds no plaintext identifier
    assert person.customer_id not in json.dumps([list(map(str, r)) for r in log])


def test_access_refuses_without_an_officer(planted: Planted) -> None:
    ws = planted.workspace
    with pytest.raises(access.AccessError, match="officer"):
        access.export(
            id_type="customer_id",
            value=planted.objector.customer_id,
            officer="",
            reason="subject access request",
            raw_db=ws.raw_db,
            warehouse_db=ws.warehouse_db,
            vault_db=ws.vault_db,
            environ={"CDP_MASTER_KEY": ws.key},
        )


# --------------------------------------------------------------------------- erasure


@dataclass
class Erased:
    planted: Planted
    needles: dict[str, str]  # label -> lower-case text that must not appear
    allowed_customer_key: str
    purge_records: list[Any]
    orders_before: int


@pytest.fixture(scope="module")
def erased(planted: Planted) -> Erased:
    ws, person = planted.workspace, planted.erased
    # excluded from every output at the next build, before any purge
    for model in OUTPUTS:
        assert person.person_key not in persons_in(ws, model), model
    order_ids = sorted(_truth_keys(ws, person.person_id).get("shop.orders", set()))
    orders_before = query(
        ws.raw_db,
        "select count(*) from shop.orders where trim(order_id) in (select unnest(?))",
        [order_ids],
    )[0][0]
    needles: dict[str, str] = {}
    for id_type, values in person.identifiers.items():
        for value in values:
            normalised = normalise.normalise_identifier(id_type, value)
            key = planted.key(id_type, value)
            needles[f"{id_type} raw"] = value.lower()
            if normalised:
                needles[f"{id_type} normalised"] = normalised.lower()
            if key:
                needles[f"{id_type} pseudonym"] = key.lower()
            if id_type == "phone" and normalised:
                needles["phone digits"] = re.sub(r"\D", "", normalised)[-10:]
    # the street address, unless a household member shares it
    for (address,) in query(
        ws.truth_db,
        "select address from profiles where person_id = ? and address is not null and address "
        "not in (select address from profiles where person_id != ? and address is not null)",
        [person.person_id, person.person_id],
    ):
        needles["address"] = str(address).lower()
    needles["person_key"] = person.person_key.lower()
    customer_key = planted.key("customer_id", person.customer_id)
    assert customer_key is not None
    result = purge(
        raw_db=ws.raw_db,
        warehouse_db=ws.warehouse_db,
        vault_db=ws.vault_db,
        as_of=dt.datetime(2026, 11, 2),
        environ={"CDP_MASTER_KEY": ws.key},
    )
    # Full refresh: the identity models are incremental and do not yet forget identifiers the
    # purge destroyed (reported to their owner); every other model is rebuilt anyway.
    run_ok(ws.dbt("run", "--full-refresh"))
    return Erased(planted, needles, customer_key, result.records, int(orders_before))


def _string_columns(con: Any) -> list[tuple[str, str, str, str]]:
    return [
        (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
        for r in con.execute(
            "select table_catalog, table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'VARCHAR[]', 'JSON') and table_catalog = current_database()"
        ).fetchall()
    ]


def _scan_database(db: Path, needles: dict[str, str]) -> list[tuple[str, str]]:
    """(file:schema.table.column, needle label) for every string column holding a needle."""
    found: list[tuple[str, str]] = []
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables: dict[tuple[str, str], list[str]] = {}
        for _catalog, schema, table, column in _string_columns(con):
            tables.setdefault((schema, table), []).append(column)
        labels = sorted(needles)
        for (schema, table), columns in sorted(tables.items()):
            checks: list[tuple[str, str]] = []
            expressions: list[str] = []
            params: list[str] = []
            for column in columns:
                text = f'lower(cast("{column}" as varchar))'
                digits = f"regexp_replace({text}, '[^0-9]', '', 'g')"
                for label in labels:
                    value = digits if label.endswith("digits") else text
                    expressions.append(f"count_if(contains({value}, ?))")
                    params.append(needles[label])
                    checks.append((column, label))
            row = con.execute(
                f'select {", ".join(expressions)} from "{schema}"."{table}"', params
            ).fetchone()
            for (column, label), hits in zip(checks, row or (), strict=True):
                if hits:
                    found.append((f"{db.name}:{schema}.{table}.{column}", label))
    finally:
        con.close()
    return found


def test_erasure_leaves_no_trace_after_build_and_purge(erased: Erased) -> None:
    planted = erased.planted
    ws, person = planted.workspace, planted.erased
    assert len(erased.needles) >= 6, erased.needles
    found: list[tuple[str, str]] = []
    for db in (ws.raw_db, ws.warehouse_db, ws.vault_db):
        found += _scan_database(db, erased.needles)
    # Nothing keeps the person key or an identifier: the kept requests name the erasure
    # request instead (decision 48), and the destruction log names a proof.
    assert not found, found
    for folder in (ws.root / "target", ws.root / "logs"):
        for path in folder.rglob("*"):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="ignore").lower()
                leaks = [label for label, needle in erased.needles.items() if needle in text]
                assert not leaks, (path, leaks)
    # the erasure request itself is kept as proof, naming itself instead of the person
    assert query(
        ws.raw_db,
        "select subject_id, details from privacy.subject_requests where request_id = 'DSR-T-ERASE'",
    ) == [("erased-by:DSR-T-ERASE", None)]
    # the customer id survives nowhere in the raw zone
    assert _scan_database(ws.raw_db, {"customer_id": person.customer_id.lower()}) == []


def test_erasure_keeps_orders_minimised_and_records_the_destruction(erased: Erased) -> None:
    planted = erased.planted
    ws, person = planted.workspace, planted.erased
    order_ids = sorted(_truth_keys(ws, person.person_id).get("shop.orders", set()))
    kept = query(
        ws.raw_db,
        "select count(*), count(customer_id), count(email), count(phone), count(delivery_address), "
        "count(total_amount) from shop.orders where trim(order_id) in (select unnest(?))",
        [order_ids],
    )[0]
    assert kept[0] == erased.orders_before > 0
    assert kept[1:5] == (0, 0, 0, 0)
    assert kept[5] > 0  # the amounts the accounting obligation needs stay
    records = [r for r in erased.purge_records if r.request_id == "DSR-T-ERASE"]
    tables = {(r.source_table, r.method) for r in records}
    assert ("crm.customers", "delete_rows") in tables
    assert ("web.events", "delete_rows") in tables
    assert ("shop.orders", "null_fields") in tables
    assert ("vault.vault_identifiers", "delete_rows") in tables
    # the subject is named by the erasure proof of the customer id the request gave
    proof = purge_module.erasure_proof(
        keys.erasure_proof_key(keys.load_master_key({"CDP_MASTER_KEY": ws.key})),
        "customer_id",
        person.customer_id,
    )
    assert proof is not None and proof.startswith("erased_")
    assert {(r.subject_id_type, r.subject_key) for r in records} == {("erasure_proof", proof)}
    logged = query(
        ws.raw_db,
        "select count(*), sum(row_count) from audit.destruction_log "
        "where request_id = 'DSR-T-ERASE' and reason = 'erasure_request'",
    )[0]
    assert logged == (len(records), sum(r.row_count for r in records))
    # the request is closed by the purge, in the tracking model of the rebuilt warehouse
    assert query(
        ws.warehouse_db,
        "select request_status, closed_by from intermediate.int_rights__request_tracking "
        "where request_id = 'DSR-T-ERASE'",
    ) == [("closed", "purge_erasure")]
    # the unverified erasure destroyed nothing
    unverified_key = planted.key("customer_id", planted.unverified.customer_id)
    assert (
        query(
            ws.raw_db,
            "select count(*) from crm.customers where customer_id = ?",
            [planted.unverified.customer_id],
        )[0][0]
        >= 1
    )
    assert unverified_key is not None


def test_the_scan_finds_a_planted_leak(erased: Erased, tmp_path: Path) -> None:
    """The scan is able to fail: a copy of the warehouse with one of the erased person's
    identifiers written back into a table is caught."""
    ws = erased.planted.workspace
    copy = tmp_path / "leaky.duckdb"
    shutil.copyfile(ws.warehouse_db, copy)
    label, needle = next((k, v) for k, v in erased.needles.items() if k.endswith("pseudonym"))
    con = duckdb.connect(str(copy))
    try:
        con.execute("create table main.leak as select ? as note", [f"left over: {needle}"])
    finally:
        con.close()
    assert ("leaky.duckdb:main.leak.note", label) in _scan_database(copy, {label: needle})
    assert re.fullmatch(r"v\d+_[0-9a-f]+", needle)
