"""Requests that name nobody, or the wrong type, are never done (issue 15, decision 51).

On a copy of the session's generated build, the privacy desk's mistakes are planted
into the landing zone for a real customer C (in the profile and the e-mail audience),
each as an erasure, a restriction, an objection and an access request:

- ``customer_id`` carrying C's e-mail, ``email`` carrying C's customer id,
- an e-mail nobody has, a phone "number" that is junk.

None may be executed or closed: each is tracked as ``needs_review`` with its reason and
its legal deadline running, counted by the overdue warning and by the compliance
summary, and C stays in the profile and the audience with no exclusion, no person,
vault entry or identity node is made from them, until a valid verified request for C
arrives and takes effect.

What the unfixed code (main at 64bb914) did on this test: the ``customer_id``
requests carrying C's e-mail and the requests for the unknown e-mail each became a
"person" of their own (link_rule ``own_identifier``, no links), their restriction and
objection were ``closed`` by the build and their erasure was listed in
int_rights__erased_persons for the purge to "complete" (``awaiting_purge``), while C
stayed in the profile and the audience; the ``email`` requests carrying C's customer id
and the junk phone requests were quarantined (``invalid_subject_id``) and missing from
request tracking, deadline and all. The ``erased-by:`` marker was pseudonymised as a
customer id and made a person too: the erased person's restriction and objection were
``closed`` by the build, the rectification ``invalid_details``, the unexported access
and portability ``awaiting_export``.

A second part plants what the erasure command leaves behind: a person's request rows
anonymised to ``erased-by:<erasure request id>`` and the purge's destruction record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import access, keys, normalise, pseudonym
from cdp.pack import summary
from cdp.purge import ERASURE_REASON, LOG_COLUMNS, LOG_TABLE
from conftest import Workspace, copy_workspace, query, run_ok
from test_rights import Person, _insert_requests, profiled_persons

pytestmark = pytest.mark.dbt

# Received long enough before the build (as of now) that every deadline has passed.
RECEIVED_AT = dt.datetime(2026, 9, 1, 9, 0)
ERASURE_CLOSED_AT = dt.datetime(2026, 9, 20, 12, 0)
REQUEST_TYPES = ("erasure", "restriction", "objection", "access")
DETAILS = {"objection": '{"purpose_code": "email_marketing"}'}
UNKNOWN_EMAIL = "Nobody.At.All+dsr@Example.ORG"
JUNK_PHONE = "not a phone"
# The models a request reaches, the overdue warning's inputs, the closures and the vault.
REBUILD = (
    "stg_privacy__subject_requests_triaged+",
    "stg_rights__request_closures+",
    "vault_identifiers",
)
OUTPUTS = (
    "marts.dim_customer_profile",
    "marts.rpt_email_audience",
    "intermediate.int_consent__profiled_persons",
)


@dataclass
class Mistyped:
    workspace: Workspace
    customer: Person
    email: str
    erased_customer: Person
    identity_key: bytes
    version: str

    def key(self, id_type: str, value: str) -> str | None:
        normalised = normalise.normalise_identifier(id_type, value)
        if normalised is None:
            return None
        return pseudonym.pseudonym(self.identity_key, self.version, id_type, normalised)

    def rebuild(self) -> None:
        run_ok(self.workspace.dbt("build", "--select", *REBUILD))


def planted_requests(customer: Person, email: str) -> dict[str, tuple[str, str, str]]:
    """request_id -> (subject_id_type, subject_id, expected review_reason)."""
    kinds = {
        "CID-WITH-EMAIL": ("customer_id", email, "identifier_type_mismatch"),
        "EMAIL-WITH-CID": ("email", customer.customer_id, "identifier_type_mismatch"),
        "UNKNOWN-EMAIL": ("email", UNKNOWN_EMAIL, "unknown_subject"),
        "JUNK-PHONE": ("phone", JUNK_PHONE, "invalid_identifier"),
    }
    return {
        f"DSR-R-{kind}-{request_type}": spec
        for kind, spec in kinds.items()
        for request_type in REQUEST_TYPES
    }


def _request_type(request_id: str) -> str:
    return request_id.rsplit("-", 1)[1]


# The erasure command's leftovers: every request of the erased person anonymised.
ERASED_BY = "DSR-E-ERASE"
ERASED_REQUESTS = {
    # request_id: (request_type, details, expected status, closed_by, review_reason)
    "DSR-E-ERASE": ("erasure", None, "closed", "purge_erasure", None),
    "DSR-E-RESTRICT": ("restriction", None, "closed", "erasure", None),
    "DSR-E-OBJECT": ("objection", None, "closed", "erasure", None),
    "DSR-E-RECTIFY": ("rectification", None, "closed", "erasure", None),
    "DSR-E-ACCESS-DONE": ("access", None, "closed", "access_export", None),
    "DSR-E-ACCESS-OPEN": ("access", None, "needs_review", None, "subject_erased"),
    "DSR-E-PORTABILITY": ("portability", None, "needs_review", None, "subject_erased"),
}


def _plant_destruction_record(raw_db: Path, request_id: str, at: dt.datetime) -> None:
    """The purge's record of an erasure, as the erasure command writes it (no person in it here)."""
    con = duckdb.connect(str(raw_db))
    try:
        columns = ", ".join(f"{name} {ctype}" for name, ctype in LOG_COLUMNS)
        con.execute("create schema if not exists audit")
        con.execute(f"create table if not exists {LOG_TABLE} ({columns})")
        row: dict[str, Any] = {
            "destruction_id": f"test-{request_id}",
            "run_id": "test-run",
            "destroyed_at": at,
            "as_of": at,
            "source_table": "crm.customers",
            "data_category": "customer_master",
            "reason": ERASURE_REASON,
            "method": "delete_rows",
            "row_count": 1,
            "keep_until": at + dt.timedelta(days=3 * 365),
            "operator": "pytest",
            "tool": "pytest",
            "request_id": request_id,
        }
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con.execute(f"insert into {LOG_TABLE} ({names}) values ({marks})", list(row.values()))
    finally:
        con.close()


@pytest.fixture(scope="module")
def mistyped(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mistyped]:
    ws = copy_workspace(built, tmp_path_factory.mktemp("request_review"))
    master = keys.load_master_key({"CDP_MASTER_KEY": ws.key})
    identity_key = keys.pseudonym_key(master, "identity")
    persons, profiled, emailed = profiled_persons(ws)
    candidates = [
        p
        for p in persons
        if p.person_key in profiled and p.person_key in emailed and p.identifiers.get("email")
    ]
    assert len(candidates) >= 3, len(candidates)
    customer, erased_customer, exported = candidates[0], candidates[1], candidates[2]
    email = sorted(customer.identifiers["email"])[0]
    rows: list[tuple[Any, ...]] = [
        (request_id, id_type, value, _request_type(request_id), "RU", RECEIVED_AT,
         DETAILS.get(_request_type(request_id), "{}"), True)
        for request_id, (id_type, value, _reason) in planted_requests(customer, email).items()
    ]  # fmt: skip
    rows += [
        (request_id, "customer_id", f"erased-by:{ERASED_BY}", request_type, "EU", RECEIVED_AT,
         details, True)
        for request_id, (request_type, details, *_expected) in ERASED_REQUESTS.items()
    ]  # fmt: skip
    _insert_requests(ws.raw_db, rows)
    _plant_destruction_record(ws.raw_db, ERASED_BY, ERASURE_CLOSED_AT)
    # An access request the officer answered (before the erasure) is closed by its export.
    access.export(
        id_type="customer_id",
        value=exported.customer_id,
        officer="Test Officer",
        reason="answered before the erasure",
        request_id="DSR-E-ACCESS-DONE",
        raw_db=ws.raw_db,
        warehouse_db=ws.warehouse_db,
        vault_db=ws.vault_db,
        environ={"CDP_MASTER_KEY": ws.key},
    )
    result = Mistyped(ws, customer, email, erased_customer, identity_key, master.version)
    result.rebuild()
    yield result


def _tracking(ws: Workspace, like: str) -> dict[str, dict[str, Any]]:
    con = duckdb.connect(str(ws.warehouse_db), read_only=True)
    try:
        cursor = con.execute(
            "select * from intermediate.int_rights__request_tracking where request_id like ?",
            [like],
        )
        names = [d[0] for d in cursor.description or ()]
        return {str(row[0]): dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        con.close()


def persons_in(ws: Workspace, model: str) -> set[str]:
    return {str(r[0]) for r in query(ws.warehouse_db, f"select person_key from {model}")}


def test_mistyped_and_unknown_requests_are_tracked_never_closed(mistyped: Mistyped) -> None:
    ws = mistyped.workspace
    planted = planted_requests(mistyped.customer, mistyped.email)
    tracked = _tracking(ws, "DSR-R-%")
    statuses = {rid: (row["request_status"], row["closed_by"]) for rid, row in tracked.items()}
    # every planted request is tracked, none closed (the unfixed code: closed or missing)
    assert statuses == dict.fromkeys(planted, ("needs_review", None)), sorted(statuses.items())
    for request_id, (_id_type, _value, reason) in planted.items():
        row = tracked[request_id]
        assert row["review_reason"] == reason, request_id
        assert row["due_date"] is not None and row["due_date"] < dt.date.today(), request_id
        assert row["is_open"] and row["is_overdue"] and row["days_past_due"] > 0, request_id
        assert row["closed_at"] is None and row["person_key"] is None, request_id
    # 152-FZ: erasure in 30 calendar days, access 10 working days (1 Sep 2026 is a Tuesday)
    assert tracked["DSR-R-JUNK-PHONE-erasure"]["due_date"] == dt.date(2026, 10, 1)
    assert tracked["DSR-R-UNKNOWN-EMAIL-access"]["due_date"] == dt.date(2026, 9, 15)


def test_every_planted_row_is_kept_and_accounted_for(mistyped: Mistyped) -> None:
    ws = mistyped.workspace
    planted = planted_requests(mistyped.customer, mistyped.email)
    triaged = {
        str(r[0]): r[1:]
        for r in query(
            ws.warehouse_db,
            "select request_id, row_status, reject_reason, subject_issue, subject_key is null "
            "from staging.stg_privacy__subject_requests_triaged where request_id like 'DSR-R-%'",
        )
    }
    assert set(triaged) == set(planted)
    for request_id, (_type, _value, reason) in planted.items():
        status, reject_reason, subject_issue, no_key = triaged[request_id]
        assert (status, reject_reason) == ("kept", None), request_id
        if reason == "unknown_subject":
            assert subject_issue is None and not no_key  # a valid e-mail: pseudonymised
        else:
            assert subject_issue == reason and no_key, request_id
    # raw = kept + duplicate + superseded + quarantined, per batch, for the request table
    accounted = query(
        ws.warehouse_db,
        "select sum(raw_rows), sum(kept_rows + duplicate_rows + superseded_rows + quarantined_rows) "
        "from audit.audit_row_accounting where source_table = 'privacy.subject_requests'",
    )[0]
    raw = query(ws.raw_db, "select count(*) from privacy.subject_requests")[0][0]
    assert accounted == (raw, raw)


def test_the_misnamed_customer_is_untouched_and_no_person_is_made(mistyped: Mistyped) -> None:
    ws, customer = mistyped.workspace, mistyped.customer
    for model in OUTPUTS:
        assert customer.person_key in persons_in(ws, model), model
    assert customer.person_key not in persons_in(ws, "intermediate.int_rights__excluded_persons")
    assert not query(
        ws.warehouse_db,
        "select bool_or(is_restricted) from intermediate.int_consent__person_purposes "
        "where person_key = ? having bool_or(is_restricted)",
        [customer.person_key],
    )
    for model in (
        "intermediate.int_rights__request_persons",
        "intermediate.int_rights__request_executions",
        "intermediate.int_rights__erased_persons",
    ):
        assert not query(
            ws.warehouse_db, f"select request_id from {model} where request_id like 'DSR-R-%'"
        ), model
    # the consent models carry the request's pseudonym only (decision 50)
    planted_keys = [
        r[0]
        for r in query(
            ws.warehouse_db,
            "select request_key from staging.stg_privacy__subject_requests "
            "where request_id like 'DSR-R-%'",
        )
    ]
    assert planted_keys
    assert not query(
        ws.warehouse_db,
        "select request_key from intermediate.int_consent__person_restrictions "
        "where request_key in (select unnest(?))",
        [planted_keys],
    )
    # no person, identity node or vault entry from a request's identifier
    misread = [
        mistyped.key("customer_id", mistyped.email),  # the e-mail read as a customer id
        mistyped.key("email", UNKNOWN_EMAIL),
        mistyped.key("customer_id", f"erased-by:{ERASED_BY}"),
    ]
    assert all(misread)
    for table, column in (
        ("intermediate.int_consent__subject_persons", "subject_key"),
        ("intermediate.int_identity_edges", "id_key_a"),
        ("intermediate.int_identity_edges", "id_key_b"),
    ):
        hits = query(
            ws.warehouse_db,
            f"select count(*) from {table} where {column} in (select unnest(?))",
            [misread],
        )
        assert hits == [(0,)], table
    assert query(
        ws.vault_db,
        "select count(*) from main.vault_identifiers where pseudonym in (select unnest(?))",
        [misread],
    ) == [(0,)]


def test_the_overdue_warning_and_the_compliance_summary_count_them(mistyped: Mistyped) -> None:
    ws = mistyped.workspace
    planted = planted_requests(mistyped.customer, mistyped.email)
    overdue = query(
        ws.warehouse_db,
        "select count(*) from intermediate.int_rights__request_tracking where is_overdue",
    )[0][0]
    assert overdue >= len(planted)
    result = ws.dbt("test", "--select", "rights_request_is_not_overdue")
    assert result.success  # a warning, not an error
    run_results = json.loads((ws.root / "target" / "run_results.json").read_text(encoding="utf-8"))
    (warned,) = [
        r for r in run_results["results"] if "rights_request_is_not_overdue" in r["unique_id"]
    ]
    assert warned["status"] == "warn" and warned["failures"] == overdue
    rows = summary.requests(ws.warehouse_db)
    assert not isinstance(rows, str), rows
    review = {
        (str(t), str(reason)): (int(n), int(late))
        for t, status, reason, n, late, *_ in rows
        if status == "needs_review"
    }
    for request_type in REQUEST_TYPES:
        for reason in ("identifier_type_mismatch", "unknown_subject", "invalid_identifier"):
            count, late = review[(request_type, reason)]
            expected = sum(
                1
                for rid, spec in planted.items()
                if _request_type(rid) == request_type and spec[2] == reason
            )
            assert count >= expected and late >= expected, (request_type, reason)
    assert sum(int(r[4]) for r in rows) == overdue


def test_erased_subjects_are_kept_unkeyed_and_their_requests_end_with_the_erasure(
    mistyped: Mistyped,
) -> None:
    ws = mistyped.workspace
    triaged = query(
        ws.warehouse_db,
        "select row_status, subject_key, subject_issue, is_subject_erased, erased_by_request_id "
        "from staging.stg_privacy__subject_requests_triaged where request_id like 'DSR-E-%'",
    )
    assert triaged == [("kept", None, None, True, ERASED_BY)] * len(ERASED_REQUESTS)
    tracked = _tracking(ws, "DSR-E-%")
    got = {
        rid: (row["request_status"], row["closed_by"], row["review_reason"])
        for rid, row in tracked.items()
    }
    assert got == {rid: tuple(spec[2:]) for rid, spec in ERASED_REQUESTS.items()}
    for request_id in ("DSR-E-RESTRICT", "DSR-E-OBJECT", "DSR-E-RECTIFY"):
        assert tracked[request_id]["closed_at"] == ERASURE_CLOSED_AT, request_id
    assert tracked["DSR-E-ERASE"]["closed_at"] == ERASURE_CLOSED_AT
    assert tracked["DSR-E-ACCESS-OPEN"]["is_overdue"]
    # nothing executed, no person
    assert not query(
        ws.warehouse_db,
        "select request_id from intermediate.int_rights__request_persons "
        "where request_id like 'DSR-E-%'",
    )


def test_a_valid_request_for_the_customer_then_takes_effect(mistyped: Mistyped) -> None:
    """Last in the module: it changes the workspace."""
    ws, customer = mistyped.workspace, mistyped.customer
    _insert_requests(
        ws.raw_db,
        [("DSR-R-VALID-restriction", "customer_id", customer.customer_id, "restriction", "RU",
          RECEIVED_AT, "{}", True)],
    )  # fmt: skip
    mistyped.rebuild()
    for model in OUTPUTS:
        assert customer.person_key not in persons_in(ws, model), model
    tracked = _tracking(ws, "DSR-R-%")
    assert (
        tracked["DSR-R-VALID-restriction"]["request_status"],
        tracked["DSR-R-VALID-restriction"]["closed_by"],
    ) == ("closed", "build")
    assert tracked["DSR-R-VALID-restriction"]["person_key"] == customer.person_key
    # the mistyped ones are still open for review: the valid request does not close them
    planted = planted_requests(customer, mistyped.email)
    assert {tracked[rid]["request_status"] for rid in planted} == {"needs_review"}
