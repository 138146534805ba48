"""Identity resolution on real dbt builds of generated landing zones.

- accuracy: pairwise precision and recall against the generator's ground truth
  (scripts/identity_accuracy.py, run as a user would run it);
- junk and shared identifiers never merge two generated persons;
- every identifier of a person is explained by the evidence that put it there;
- an incremental run after a second batch (with hand-made merges and a guard
  that flips) gives exactly what a full refresh gives, and persons the batch
  did not touch keep their person keys.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cdp import keys, normalise, pseudonym
from cdp.generator.dirt import JUNK_EMAILS, JUNK_PHONES
from conftest import ROOT, SEED, Workspace, copy_workspace, generate_landing

pytestmark = pytest.mark.dbt

ACCURACY = ROOT / "scripts" / "identity_accuracy.py"
IDENTITY = "+intermediate.identity"  # identity and everything upstream
IDENTITY_TABLES = (
    "int_identity_edges",
    "int_identity_nodes",
    "int_identity_components",
    "int_identity_devices",
    "int_identity_person_identifiers",
    "int_identity_refused_identifiers",
    "int_identity_persons",
    "int_identity_person_edges",
    "int_identity_records_resolved",
)


# --------------------------------------------------------------------------- helpers


class Pseudonymiser:
    """Identity-domain pseudonyms of normalised identifiers, with the build's key."""

    def __init__(self, workspace: Workspace) -> None:
        master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
        self._key = keys.pseudonym_key(master, "identity")
        self._version = master.version

    def __call__(self, id_type: str, value: str) -> str | None:
        return pseudonym.pseudonym(
            self._key, self._version, id_type, normalise.normalise_identifier(id_type, value)
        )


def warehouse(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(workspace.warehouse_db), read_only=True)
    con.execute(f"attach '{workspace.truth_db}' as truth (read_only)")
    return con


def crm_persons(workspace: Workspace, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """customer_key -> the generator's person_id, for every CRM record in the truth."""
    to_key = Pseudonymiser(workspace)
    rows = con.execute(
        "select distinct record_key, person_id from truth.records "
        "where schema_name = 'crm' and table_name = 'customers'"
    ).fetchall()
    result: dict[str, str] = {}
    for customer_id, person_id in rows:
        key = to_key("customer_id", str(customer_id))
        assert key is not None
        result[key] = str(person_id)
    return result


def snapshot(workspace: Workspace) -> dict[str, set[tuple[object, ...]]]:
    con = duckdb.connect(str(workspace.warehouse_db), read_only=True)
    try:
        return {
            table: set(con.execute(f"select * from intermediate.{table}").fetchall())
            for table in IDENTITY_TABLES
        }
    finally:
        con.close()


def build_identity(workspace: Workspace, *extra: str, data_tests: bool = False) -> None:
    """Build identity and what it needs, then run identity's own data tests.

    Two steps, so that data tests other areas attach to shared ancestors (seeds,
    staging) do not decide this module's outcome.
    """
    result = workspace.dbt("build", "--select", IDENTITY, "--exclude", "test_type:data", *extra)
    assert result.success, result.output[-6000:]
    if not data_tests:
        return
    result = workspace.dbt(
        "test", "--select", "intermediate.identity", "--exclude", "test_type:unit"
    )
    assert result.success, result.output[-6000:]


# --------------------------------------------------------------------------- accuracy


def test_precision_and_recall_meet_the_goal_on_generated_data(built: Workspace) -> None:
    outcome = subprocess.run(
        [
            sys.executable,
            str(ACCURACY),
            "--warehouse-db",
            str(built.warehouse_db),
            "--truth-db",
            str(built.truth_db),
            "--check",
        ],
        env={**built.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    found = re.search(r"precision ([0-9.]+) \(goal >= 0.999\), recall ([0-9.]+)", outcome.stdout)
    assert found is not None, outcome.stdout
    assert float(found.group(1)) >= 0.999
    assert float(found.group(2)) >= 0.98
    assert "goal met" in outcome.stdout
    assert built.key not in outcome.stdout + outcome.stderr


def test_accuracy_script_needs_the_key_and_says_so(built: Workspace) -> None:
    env = {k: v for k, v in built.env.items() if k != "CDP_MASTER_KEY"}
    outcome = subprocess.run(
        [
            sys.executable,
            str(ACCURACY),
            "--warehouse-db",
            str(built.warehouse_db),
            "--truth-db",
            str(built.truth_db),
        ],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert outcome.returncode == 2
    assert "CDP_MASTER_KEY" in outcome.stderr


# --------------------------------------------------------------------------- over-merge guards


def test_no_resolved_person_holds_two_generated_persons(built: Workspace) -> None:
    con = warehouse(built)
    try:
        truth_of = crm_persons(built, con)
        persons: dict[str, set[str]] = {}
        for customer_key, person_key in con.execute(
            "select id_key, person_key from intermediate.int_identity_person_identifiers "
            "where id_type = 'customer_id'"
        ).fetchall():
            persons.setdefault(str(person_key), set()).add(truth_of[str(customer_key)])
        assert len(persons) > 200
        assert [p for p, truth in persons.items() if len(truth) > 1] == []
    finally:
        con.close()


def test_junk_and_shared_identifiers_never_merge_two_generated_persons(built: Workspace) -> None:
    to_key = Pseudonymiser(built)
    con = warehouse(built)
    try:
        truth_of = crm_persons(built, con)
        shared = con.execute(
            "select id_type, value, reason from truth.shared_identifiers"
        ).fetchall()
        assert shared, "the generator should make family mailboxes"
        values = [(str(t), str(v), str(r)) for t, v, r in shared]
        values += [("email", v, "junk") for v in set(JUNK_EMAILS)]
        values += [("phone", v, "junk") for v in set(JUNK_PHONES)]
        person_of = dict(
            con.execute(
                "select id_key, person_key from intermediate.int_identity_person_identifiers"
            ).fetchall()
        )
        refused = dict(
            con.execute(
                "select id_key, refusal_reason from intermediate.int_identity_refused_identifiers"
            ).fetchall()
        )
        checked = 0
        for id_type, value, why in values:
            key = to_key(id_type, value)
            if key is None:  # rejected by the normaliser: never reaches the graph
                continue
            assert key not in person_of, f"{why} {id_type} belongs to a person"
            customers = [
                str(row[0])
                for row in con.execute(
                    "select id_key_a from intermediate.int_identity_edges "
                    "where id_key_b = ? and id_type_a = 'customer_id'",
                    [key],
                ).fetchall()
            ]
            truth_persons = {truth_of[c] for c in customers}
            if len(truth_persons) < 2:
                continue
            checked += 1
            assert key in refused, f"{why} {id_type} shared by {len(truth_persons)} persons"
            # the customers of different generated persons stay in different resolved persons
            resolved = {truth_of[c]: person_of[c] for c in customers}
            assert len(set(resolved.values())) == len(truth_persons), why
        assert checked > 0, "no shared identifier was used by two persons; the test proves nothing"
    finally:
        con.close()


def test_refused_identifiers_are_reported_with_their_reason(built: Workspace) -> None:
    con = warehouse(built)
    try:
        reasons = dict(
            con.execute(
                "select refusal_reason, count(*) from intermediate.int_identity_refused_identifiers "
                "group by all"
            ).fetchall()
        )
        assert reasons.get("junk_value", 0) > 0
        assert (
            reasons.get("customers_conflict", 0)
            + reasons.get("customers_uncorroborated", 0)
            + reasons.get("linked_to_too_many_customers", 0)
        ) > 0
        refused_links = con.execute(
            "select count(*) from intermediate.int_identity_person_edges "
            "where edge_role = 'refused' and refusal_reason is null"
        ).fetchone()
        assert refused_links == (0,)
    finally:
        con.close()


# --------------------------------------------------------------------------- explainability


def test_every_identifier_of_a_person_is_explained(built: Workspace) -> None:
    con = warehouse(built)
    try:
        unexplained = con.execute(
            """
            select person_identifiers.id_type, count(*)
            from intermediate.int_identity_person_identifiers as person_identifiers
            inner join intermediate.int_identity_persons as persons
                on person_identifiers.person_key = persons.person_key
            where persons.n_identifiers > 1
                and not exists (
                    select 1 from intermediate.int_identity_person_edges as person_edges
                    where person_edges.person_key = person_identifiers.person_key
                        and person_edges.edge_role = 'link'
                        and person_identifiers.id_key in (person_edges.id_key_a, person_edges.id_key_b)
                )
            group by all
            """
        ).fetchall()
        assert unexplained == []
        sources = {
            str(row[0])
            for row in con.execute(
                "select distinct source_model from intermediate.int_identity_person_edges "
                "where edge_role = 'link'"
            ).fetchall()
        }
        assert {
            "stg_crm__customers_triaged",
            "stg_web__events_triaged",
            "stg_shop__orders_triaged",
            "stg_messaging__message_events_triaged",
        } <= sources
    finally:
        con.close()


# --------------------------------------------------------------------------- incremental


@dataclass
class Incremental:
    workspace: Workspace
    after_batch_1: dict[str, set[tuple[object, ...]]]
    incremental: dict[str, set[tuple[object, ...]]]
    full_refresh: dict[str, set[tuple[object, ...]]]
    merged: tuple[str, str]  # customer ids of two persons a hand-made guest order links
    overshared_email: str  # an e-mail three hand-made CRM records make shared


def _pick_persons(
    workspace: Workspace, state: dict[str, set[tuple[object, ...]]]
) -> list[tuple[str, str, str]]:
    """(customer id, e-mail, phone) of batch-1 persons whose three identifiers resolved together."""
    to_key = Pseudonymiser(workspace)
    person_of = {row[1]: row[2] for row in state["int_identity_person_identifiers"]}
    truth = duckdb.connect(str(workspace.truth_db), read_only=True)
    try:
        candidates = truth.execute(
            """
            select profiles.customer_id, profiles.email, profiles.phone
            from profiles
            inner join persons using (person_id)
            where profiles._batch_id = 'batch_0001' and persons.household_id is null
                and profiles.email is not null and profiles.phone is not null
                and profiles.alt_customer_id is null
            order by profiles.customer_id
            """
        ).fetchall()
    finally:
        truth.close()
    picked: list[tuple[str, str, str]] = []
    for customer_id, email, phone in candidates:
        person = person_of.get(to_key("customer_id", str(customer_id)))
        if person is not None and all(
            person_of.get(to_key(id_type, str(value))) == person
            for id_type, value in (("email", email), ("phone", phone))
        ):
            picked.append((str(customer_id), str(email), str(phone)))
    return picked


def _hand_made_batch_2(
    workspace: Workspace, state: dict[str, set[tuple[object, ...]]]
) -> tuple[tuple[str, str], str]:
    """Append to batch 2: a guest order linking two persons, three customers sharing an e-mail."""
    picked = _pick_persons(workspace, state)
    assert len(picked) >= 3
    (customer_a, email_a, _), (customer_b, _, phone_b), (_, email_c, _) = picked[:3]
    raw = duckdb.connect(str(workspace.raw_db))
    try:
        loaded = raw.execute(
            "select max(_loaded_at) from shop.orders where _batch_id = 'batch_0002'"
        ).fetchone()
        assert loaded is not None and loaded[0] is not None
        loaded_at: dt.datetime = loaded[0]
        at = loaded_at - dt.timedelta(hours=3)
        raw.execute(
            "insert into shop.orders (order_id, customer_id, email, phone, ordered_at, status, "
            "total_amount, currency, channel, store_id, delivery_address, delivery_city, "
            "payment_method, updated_at, _loaded_at, _batch_id) values "
            "('SO-TEST-000001', null, ?, ?, ?, 'placed', 10.00, 'RUB', 'web', null, null, null, "
            "'card', ?, ?, 'batch_0002')",
            [email_a, phone_b, at, at, loaded_at],
        )
        for n in range(3):
            raw.execute(
                "insert into crm.customers (customer_id, email, created_at, updated_at, is_deleted, "
                "_loaded_at, _batch_id) values (?, ?, ?, ?, false, ?, 'batch_0002')",
                [f"CRM-TEST-{n}", email_c, at, at, loaded_at],
            )
    finally:
        raw.close()
    return (customer_a, customer_b), email_c


@pytest.fixture(scope="module")
def incremental(
    built: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Incremental]:
    """Batch 1 built (a copy of the session build); batch 2 (generated plus hand-made rows)
    built incrementally, then rebuilt."""
    workspace = copy_workspace(built, tmp_path_factory.mktemp("identity_incremental"))
    after_batch_1 = snapshot(workspace)
    generate_landing(workspace.raw_db, workspace.truth_db, customers=60, seed=SEED, batch=2)
    merged, overshared = _hand_made_batch_2(workspace, after_batch_1)
    # the data tests include a full recomputation of the components
    build_identity(workspace, data_tests=True)
    incremental_state = snapshot(workspace)
    build_identity(workspace, "--full-refresh")
    yield Incremental(
        workspace=workspace,
        after_batch_1=after_batch_1,
        incremental=incremental_state,
        full_refresh=snapshot(workspace),
        merged=merged,
        overshared_email=overshared,
    )


@pytest.mark.slow
@pytest.mark.parametrize("table", IDENTITY_TABLES)
def test_incremental_run_equals_full_refresh(incremental: Incremental, table: str) -> None:
    got, want = incremental.incremental[table], incremental.full_refresh[table]
    assert len(want) > 0
    assert got - want == set(), f"{len(got - want)} rows only in the incremental result"
    assert want - got == set(), f"{len(want - got)} rows only in the full refresh"


@pytest.mark.slow
def test_batch_two_added_edges_and_merged_and_split_persons(incremental: Incremental) -> None:
    to_key = Pseudonymiser(incremental.workspace)
    edges_1 = incremental.after_batch_1["int_identity_edges"]
    edges_2 = incremental.incremental["int_identity_edges"]
    assert len(edges_2) > len(edges_1)

    def person_of(state: dict[str, set[tuple[object, ...]]], customer_id: str) -> str:
        key = to_key("customer_id", customer_id)
        found = [r[2] for r in state["int_identity_components"] if r[1] == key]
        assert len(found) == 1
        return str(found[0])

    customer_a, customer_b = incremental.merged
    before = {person_of(incremental.after_batch_1, c) for c in (customer_a, customer_b)}
    after = {person_of(incremental.incremental, c) for c in (customer_a, customer_b)}
    assert len(before) == 2 and len(after) == 1
    # the merged person keeps one of the two earlier keys: the older anchor's
    assert after <= before

    email_key = to_key("email", incremental.overshared_email)
    refused = {r[1]: r[3] for r in incremental.incremental["int_identity_refused_identifiers"]}
    assert refused.get(email_key) == "linked_to_too_many_customers"
    was_linked = {r[1] for r in incremental.after_batch_1["int_identity_person_identifiers"]}
    assert email_key in was_linked


@pytest.mark.slow
def test_persons_untouched_by_batch_two_keep_their_keys(incremental: Incremental) -> None:
    def members(state: dict[str, set[tuple[object, ...]]]) -> dict[frozenset[object], object]:
        persons: dict[object, set[object]] = {}
        for row in state["int_identity_person_identifiers"]:
            persons.setdefault(row[2], set()).add(row[1])
        return {frozenset(ids): person for person, ids in persons.items()}

    before, after = members(incremental.after_batch_1), members(incremental.incremental)
    unchanged = set(before) & set(after)
    assert len(unchanged) > 0.8 * len(before)
    assert [ids for ids in unchanged if before[ids] != after[ids]] == []


def _relations(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            str(row[0])
            for row in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'intermediate' and table_name like 'int_identity%'"
            ).fetchall()
        ]
    finally:
        con.close()


@pytest.mark.slow
def test_incremental_run_left_no_temporary_relations(incremental: Incremental) -> None:
    assert sorted(_relations(incremental.workspace.warehouse_db)) == sorted(
        [*IDENTITY_TABLES, "int_identity_junk_identifiers"]
    )
