"""The retention purge of the raw zone (``scripts/purge.py``, ``cdp.purge``).

- After the purge no raw row is older than its retention window, and the
  destruction log accounts for every destroyed and depersonalised row, per
  table and load batch.
- Per-person records carry the person's identity pseudonym, computed in
  Python with the master key, equal to the warehouse's.
- The purge never gives anyone back a consent: after a rebuild on the purged
  landing zone no identifier belongs to a person permitted for a purpose whose
  person was not permitted before, though the purge destroyed evidence that
  linked a person's identifiers and the rebuilt graph splits them (the kept
  consent scopes, decision 71); a planted person shows it by attack.
- A second purge at the same moment finds nothing left (the purge is idempotent).
- Destruction records expire after 3 years, and a withdrawal's kept scope when its
  withdrawal does; both expiries are recorded. A kept scope holds keyed values only.
- A dry run writes nothing; a missing key, warehouse or bad --as-of stops it
  with a clear message before anything is destroyed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import keys, normalise, pseudonym, sources
from cdp import purge as purge_module
from cdp.as_of import parse_as_of
from cdp.purge import PurgeError, purge
from conftest import ROOT, Workspace, copy_workspace, query, run_ok, write

pytestmark = pytest.mark.dbt

# Far enough after the generated history (reference date 2026-11-01, ~3 years back)
# that every rule fires: site, messages, consent episodes, requests, inactivity.
PURGE_AS_OF = "2027-12-01"
PURGE_AS_OF_TS = dt.datetime(2027, 12, 1)
# Every landing table the sources' metadata declares (cdp.sources): a new one is covered.
RAW_TABLES = tuple(table.qualified for table in sources.landing_tables())
MY_MODELS = "path:models/intermediate/consent+"


def counts_by_batch(raw_db: Path) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for table in RAW_TABLES:
        for batch, n in query(raw_db, f"select _batch_id, count(*) from {table} group by all"):
            out[(table, batch)] = int(n)
    return out


def permitted(db: Path) -> set[tuple[str, str]]:
    return {
        (str(r[0]), str(r[1]))
        for r in query(
            db,
            "select person_key, purpose_code from intermediate.int_consent__person_purposes where is_permitted",
        )
    }


def normalised(id_type: str | None, value: str | None) -> str | None:
    """An identifier normalised as staging does, None for an unknown type."""
    if id_type not in normalise.IDENTIFIER_NORMALISERS:
        return None
    return normalise.normalise_identifier(id_type, value)


def plant_order_of_an_inactive_customer(workspace: Workspace) -> None:
    """An order (within the 5-year accounting window) of a customer the purge finds inactive,
    dated at their last activity, so the depersonalisation of orders is exercised whatever
    the generated data holds."""
    plan = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=PURGE_AS_OF_TS,
        dry_run=True,
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    inactive = {
        r.subject_key: r.oldest_record_at
        for r in plan.records
        if r.source_table == "crm.customers" and r.reason == "inactivity_limit"
    }
    assert inactive, "the generated data should hold customers inactive by then"
    master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
    identity = keys.pseudonym_key(master, "identity")
    for (customer_id,) in query(workspace.raw_db, "select distinct customer_id from crm.customers"):
        value = normalise.normalise_identifier("customer_id", customer_id)
        key = pseudonym.pseudonym(identity, master.version, "customer_id", value)
        if key in inactive and inactive[key] is not None:
            at = inactive[key]
            con = duckdb.connect(str(workspace.raw_db))
            try:
                con.execute(
                    "insert into shop.orders values (?, ?, ?, ?, ?, 'delivered', 100.00, 'RUB', 'web', "
                    "null, ?, ?, 'card', ?, ?, 'hand_orders')",
                    [
                        "HAND-ORDER-1",
                        customer_id,
                        "planted.buyer@example.org",
                        "+7 916 123-45-67",
                        at,
                        "ул. Тестовая, д. 1",
                        "Москва",
                        at,
                        dt.datetime(2026, 11, 1, 2, 0),
                    ],
                )
            finally:
                con.close()
            return
    pytest.fail("no raw customer id matches an inactive customer's pseudonym")


#: The planted person of the split attack (plant_split_person): a customer and a cookie tied
#: only by a login the purge destroys (site events are kept 13 months), a grant made through
#: the cookie and withdrawn through the customer id (consent records are kept 3 years).
SPLIT_CUSTOMER = "ATTACK-SPLIT-0001"
SPLIT_COOKIE = "attack-split-cookie-0001"
SPLIT_PURPOSE = "analytics"
SPLIT_BATCH = "attack_split"


def plant_split_person(workspace: Workspace) -> None:
    loaded = dt.datetime(2026, 11, 2, 3, 0)
    login = dt.datetime(2026, 5, 2, 10, 0)
    con = duckdb.connect(str(workspace.raw_db))
    try:
        con.execute(
            "insert into crm.customers (customer_id, email, phone, first_name, last_name, "
            "gender, city, country_code, created_at, updated_at, is_deleted, _loaded_at, _batch_id) "
            "values (?, null, null, 'Сплит', 'Атакин', 'f', 'Москва', 'RU', ?, ?, false, ?, ?)",
            [SPLIT_CUSTOMER, login, login, loaded, SPLIT_BATCH],
        )
        con.execute(
            "insert into web.events (event_id, anonymous_id, customer_id, event_type, event_at, "
            "received_at, page_url, properties, _loaded_at, _batch_id) "
            "values ('attack-split-login-1', ?, ?, 'login', ?, ?, 'https://shop.example.ru/login', "
            "'{}', ?, ?)",
            [SPLIT_COOKIE, SPLIT_CUSTOMER, login, login, loaded, SPLIT_BATCH],
        )
        for event_id, id_type, subject, action, at in (
            ("attack-split-grant-1", "anonymous_id", SPLIT_COOKIE, "grant", login),
            (
                "attack-split-withdraw-1",
                "customer_id",
                SPLIT_CUSTOMER,
                "withdraw",
                dt.datetime(2026, 6, 1, 9, 0),
            ),
        ):
            con.execute(
                "insert into privacy.consent_events (consent_event_id, subject_id_type, subject_id, "
                "purpose_code, action, channel, policy_version, evidence_ref, captured_at, "
                "_loaded_at, _batch_id) values (?, ?, ?, ?, ?, 'web_form', 'v3.0', ?, ?, ?, ?)",
                [
                    event_id,
                    id_type,
                    subject,
                    SPLIT_PURPOSE,
                    action,
                    "WF-" + event_id,
                    at,
                    loaded,
                    SPLIT_BATCH,
                ],
            )
    finally:
        con.close()


def identity_key(workspace: Workspace, id_type: str, value: str) -> str:
    return workspace.identifier_key(id_type, value)


def permitted_identifiers(db: Path) -> set[tuple[str, str]]:
    """(identifier pseudonym, purpose) for every identifier of a person permitted for the purpose:
    identifiers outlive a split of their person, person keys do not."""
    return {
        (str(r[0]), str(r[1]))
        for r in query(
            db,
            "select persons.subject_key, purposes.purpose_code "
            "from intermediate.int_consent__subject_persons as persons "
            "inner join intermediate.int_consent__person_purposes as purposes "
            "on persons.person_key = purposes.person_key where purposes.is_permitted",
        )
    }


def person_of(db: Path, subject_key: str) -> set[str]:
    return {
        str(r[0])
        for r in query(
            db,
            "select person_key from intermediate.int_consent__subject_persons where subject_key = ?",
            [subject_key],
        )
    }


#: Rebuild on the purged landing zone: staging, identity, the consent models.
REBUILD = "+" + MY_MODELS


@pytest.fixture(scope="module")
def purged(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A copy of the build, its consent models at PURGE_AS_OF, purged as of then, rebuilt."""
    workspace = copy_workspace(built, tmp_path_factory.mktemp("purge"))
    vars_ = "{as_of: '" + PURGE_AS_OF + "'}"
    plant_split_person(workspace)
    run_ok(workspace.dbt("run", "--select", REBUILD, "--vars", vars_))
    plant_order_of_an_inactive_customer(workspace)
    split_keys = (
        identity_key(workspace, "customer_id", SPLIT_CUSTOMER),
        identity_key(workspace, "anonymous_id", SPLIT_COOKIE),
    )
    split_persons_before = [person_of(workspace.warehouse_db, k) for k in split_keys]
    permitted_identifiers_before = permitted_identifiers(workspace.warehouse_db)
    before = counts_by_batch(workspace.raw_db)
    customers_before = {
        r[0] for r in query(workspace.raw_db, "select distinct customer_id from crm.customers")
    }
    permitted_before = permitted(workspace.warehouse_db)
    persons_before: dict[str, set[str]] = {}
    for subject_key, person_key in query(
        workspace.warehouse_db,
        "select subject_key, person_key from intermediate.int_consent__subject_persons",
    ):
        persons_before.setdefault(str(subject_key), set()).add(str(person_key))
    subject_keys_before = set(persons_before)
    result = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=parse_as_of(PURGE_AS_OF),
        operator="pytest",
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    after = counts_by_batch(workspace.raw_db)
    # Rebuild on the purged landing zone: staging, identity, the consent models and their tests.
    run_ok(workspace.dbt("run", "--select", REBUILD, "--vars", vars_))
    rebuild = run_ok(
        workspace.dbt("test", "--select", MY_MODELS, "--exclude", "test_type:unit", "--vars", vars_)
    )
    yield {
        "workspace": workspace,
        "result": result,
        "before": before,
        "after": after,
        "customers_before": customers_before,
        "permitted_before": permitted_before,
        "subject_keys_before": subject_keys_before,
        "persons_before": persons_before,
        "permitted_after": permitted(workspace.warehouse_db),
        "permitted_identifiers_before": permitted_identifiers_before,
        "permitted_identifiers_after": permitted_identifiers(workspace.warehouse_db),
        "split_keys": split_keys,
        "split_persons_before": split_persons_before,
        "rebuild": rebuild,
    }


def test_destruction_log_accounts_for_every_destroyed_row(purged: dict[str, Any]) -> None:
    raw_db = purged["workspace"].raw_db
    logged = {
        (str(table), str(batch)): int(n)
        for table, batch, n in query(
            raw_db,
            "select source_table, source_batch_id, sum(row_count) from audit.destruction_log "
            "where method = 'delete_rows' group by all",
        )
    }
    destroyed = {
        key: n - purged["after"].get(key, 0)
        for key, n in purged["before"].items()
        if n != purged["after"].get(key, 0)
    }
    assert destroyed == logged
    assert sum(destroyed.values()) > 1000
    # Every rule fired on the generated data.
    reasons = {(r.source_table, r.reason) for r in purged["result"].records}
    assert {
        ("web.events", "retention_expired"),
        ("messaging.message_events", "retention_expired"),
        ("privacy.consent_events", "consent_episode_expired"),
        ("crm.customers", "inactivity_limit"),
    } <= reasons
    # Depersonalised orders: no order still names a customer whose orders were depersonalised.
    workspace = purged["workspace"]
    master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
    identity = keys.pseudonym_key(master, "identity")
    depersonalised = {
        r[0]
        for r in query(
            raw_db,
            "select subject_key from audit.destruction_log where method = 'null_fields'",
        )
    }
    assert depersonalised, "the planted order of an inactive customer is depersonalised"
    assert query(
        raw_db,
        "select email, phone, delivery_address, delivery_city, customer_id, total_amount "
        "from shop.orders where order_id = 'HAND-ORDER-1'",
    ) == [(None, None, None, None, None, 100)]
    remaining = {
        pseudonym.pseudonym(
            identity,
            master.version,
            "customer_id",
            normalise.normalise_identifier("customer_id", c),
        )
        for (c,) in query(raw_db, "select distinct customer_id from shop.orders")
    }
    assert not depersonalised & remaining
    assert query(raw_db, "select count(*) from audit.destruction_log")[0][0] == len(
        purged["result"].records
    )


def test_no_raw_row_is_older_than_its_retention_window(purged: dict[str, Any]) -> None:
    workspace = purged["workspace"]
    categories = purge_module.load_categories()

    def cutoff(category: str) -> dt.datetime:
        return PURGE_AS_OF_TS - dt.timedelta(days=categories[category].retention_days)

    checks = {
        "web.events": (
            "select count(*) from web.events where coalesce(least(event_at, received_at), _loaded_at) < ?",
            "site_activity",
        ),
        "messaging.message_events": (
            "select count(*) from messaging.message_events where coalesce(event_at, _loaded_at) < ? "
            "and lower(trim(event_type)) not in ('unsubscribed', 'complained')",
            "communication_activity",
        ),
        "messaging opt-outs": (
            "select count(*) from messaging.message_events where coalesce(event_at, _loaded_at) < ? "
            "and lower(trim(event_type)) in ('unsubscribed', 'complained')",
            "consent_records",
        ),
        "shop.orders": (
            "select count(*) from shop.orders where coalesce(ordered_at, updated_at, _loaded_at) < ?",
            "purchase_history",
        ),
        "privacy.subject_requests": (
            "select count(*) from privacy.subject_requests where coalesce(received_at, _loaded_at) < ? "
            "and lower(trim(request_type)) not in ('restriction', 'erasure')",
            "subject_requests",
        ),
    }
    for name, (sql, category) in checks.items():
        assert query(workspace.raw_db, sql, [cutoff(category)]) == [(0,)], name
    # Consent records: no event is followed, for the same identifier and purpose, by a
    # withdrawal older than the window (the purge judges per person, which includes this).
    con = duckdb.connect(str(workspace.raw_db), read_only=True)
    try:
        events = con.execute(
            "select lower(trim(subject_id_type)), subject_id, lower(trim(purpose_code)), "
            "lower(trim(action)), least(captured_at, _loaded_at) from privacy.consent_events"
        ).fetchall()
    finally:
        con.close()
    withdrawals: dict[tuple[str | None, str], list[dt.datetime]] = {}
    for id_type, value, purpose, action, at in events:
        norm = normalised(id_type, value)
        if action == "withdraw" and norm is not None and at is not None:
            withdrawals.setdefault((f"{id_type}:{norm}", purpose), []).append(at)
    stale = 0
    for id_type, value, purpose, _action, at in events:
        norm = normalised(id_type, value)
        ends = withdrawals.get((f"{id_type}:{norm}", purpose), [])
        stale += any(at <= end < cutoff("consent_records") for end in ends)
    assert stale == 0


def test_a_second_purge_finds_nothing_left(purged: dict[str, Any]) -> None:
    """Inactive customers: nothing left whose own last activity (raw, by customer id) is older
    than the limit, unless the warehouse saw newer activity through a linked identifier."""
    workspace = purged["workspace"]
    result = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=PURGE_AS_OF_TS,
        dry_run=True,
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    assert result.records == [], "a second purge must find nothing left to destroy"


def test_per_person_records_name_the_persons_pseudonym(purged: dict[str, Any]) -> None:
    workspace = purged["workspace"]
    master = keys.load_master_key({"CDP_MASTER_KEY": workspace.key})
    identity = keys.pseudonym_key(master, "identity")
    gone = purged["customers_before"] - {
        r[0] for r in query(workspace.raw_db, "select distinct customer_id from crm.customers")
    }
    expected = {
        pseudonym.pseudonym(
            identity,
            master.version,
            "customer_id",
            normalise.normalise_identifier("customer_id", c),
        )
        for c in gone
    }
    logged = {
        r[0]
        for r in query(
            workspace.raw_db,
            "select subject_key from audit.destruction_log "
            "where source_table = 'crm.customers' and reason = 'inactivity_limit'",
        )
    }
    # Customers whose verified erasure request the purge executed are gone too, recorded by
    # an erasure proof of their customer id (decision 48; test_erasure.py covers them).
    has_proofs = query(
        workspace.raw_db,
        "select count(*) from information_schema.tables where table_name = 'erasure_proofs'",
    ) == [(1,)]
    proofs = (
        {r[0] for r in query(workspace.raw_db, "select proof from audit.erasure_proofs")}
        if has_proofs
        else set()
    )
    proof_key = keys.erasure_proof_key(master)
    erased_customers = {
        c for c in gone if purge_module.erasure_proof(proof_key, "customer_id", c) in proofs
    }
    erased = {
        pseudonym.pseudonym(
            identity,
            master.version,
            "customer_id",
            normalise.normalise_identifier("customer_id", c),
        )
        for c in erased_customers
    }
    assert gone and logged == expected - erased
    # The same pseudonyms the warehouse used for those customers before the purge.
    assert logged <= purged["subject_keys_before"]
    rows = query(
        workspace.raw_db,
        "select distinct data_category, method, operator, tool, keep_until - destroyed_at "
        "from audit.destruction_log where source_table = 'crm.customers'",
    )
    assert rows == [
        (
            "customer_master_data",
            "delete_rows",
            "pytest",
            purge_module.TOOL,
            dt.timedelta(days=1096),
        )
    ]


def test_purge_never_gives_consent_back(purged: dict[str, Any]) -> None:
    """Per identifier, not per person key: the purge destroys evidence that linked a person's
    identifiers (old logins, an inactive customer's CRM rows), the rebuilt graph splits them and
    the part without the anchor gets a new person key, with the consent it had. What must not
    happen is an identifier whose person is permitted now when its person was not before."""
    given_back = purged["permitted_identifiers_after"] - purged["permitted_identifiers_before"]
    assert given_back == set()
    assert purged["permitted_identifiers_after"], "people with consent in force stay"
    # The split happened: what the scopes guard against is real on this landing zone.
    assert purged["permitted_after"] - purged["permitted_before"], (
        "the rebuilt graph should hold persons (new person keys) split off by the purge"
    )


def _rebuild(workspace: Workspace, *extra: str) -> None:
    vars_ = "{as_of: '" + PURGE_AS_OF + "'}"
    run_ok(workspace.dbt("run", "--select", REBUILD, "--vars", vars_, *extra))


def _split_permitted(workspace: Workspace, split_keys: tuple[str, str]) -> bool:
    """Is the planted cookie's person permitted for the purpose its owner withdrew?"""
    return (split_keys[1], SPLIT_PURPOSE) in permitted_identifiers(workspace.warehouse_db)


def test_split_attack_withdrawal_reaches_the_split_off_cookie(
    purged: dict[str, Any], tmp_path: Path
) -> None:
    """The attack: a person whose only linking evidence the purge destroys, and whose withdrawal
    was made through the other identifier. Against the planted weak configuration (the purge
    keeps no scope: audit.consent_scopes emptied after it, as before decision 71) consent comes
    back; against the product it does not, on an incremental rebuild and on a full refresh."""
    customer_key, cookie_key = purged["split_keys"]
    customer_before, cookie_before = purged["split_persons_before"]
    assert customer_before == cookie_before and len(cookie_before) == 1, (
        "before the purge the login ties the cookie to the customer: one person"
    )
    assert (cookie_key, SPLIT_PURPOSE) not in purged["permitted_identifiers_before"]
    workspace = purged["workspace"]
    raw_db = workspace.raw_db
    assert query(raw_db, "select count(*) from web.events where _batch_id = ?", [SPLIT_BATCH]) == [
        (0,)
    ], "the purge destroyed the login (site events are kept 13 months)"
    # The product, incremental rebuild (the fixture's): split, and the withdrawal still reaches.
    assert person_of(workspace.warehouse_db, customer_key).isdisjoint(
        person_of(workspace.warehouse_db, cookie_key)
    ), "the rebuilt graph splits the cookie from the customer"
    assert not _split_permitted(workspace, purged["split_keys"])
    scope = query(
        raw_db,
        "select member_key from audit.consent_scopes where scope_kind = 'withdrawal' "
        "and purpose_code = ? and member_key in (?, ?)",
        [SPLIT_PURPOSE, customer_key, cookie_key],
    )
    assert {r[0] for r in scope} == {customer_key, cookie_key}
    # The product, full refresh (what cdp erase and key rotation run).
    full = copy_workspace(workspace, tmp_path / "full")
    _rebuild(full, "--full-refresh")
    assert not _split_permitted(full, purged["split_keys"])
    # The planted weak configuration: the same purge without its kept scopes.
    weak = copy_workspace(workspace, tmp_path / "weak")
    write(weak.raw_db, "delete from audit.consent_scopes")
    _rebuild(weak, "--full-refresh")
    assert _split_permitted(weak, purged["split_keys"]), (
        "without the kept scope the withdrawal no longer reaches the cookie: consent comes back"
    )


def test_destruction_records_expire_after_three_years(
    purged: dict[str, Any], tmp_path: Path
) -> None:
    workspace = copy_workspace(purged["workspace"], tmp_path / "later")
    first = query(workspace.raw_db, "select count(*), max(destroyed_at) from audit.destruction_log")
    count, destroyed_at = first[0]
    later = destroyed_at + dt.timedelta(days=1097)
    result = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=later,
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    expired = [r for r in result.records if r.source_table == "audit.destruction_log"]
    assert sum(r.row_count for r in expired) == count
    remaining = query(workspace.raw_db, "select run_id from audit.destruction_log")
    assert {r[0] for r in remaining} == {result.run_id}


def test_kept_scopes_expire_with_their_withdrawal(purged: dict[str, Any], tmp_path: Path) -> None:
    """A withdrawal's scope is consent proof: kept exactly as long as the withdrawal counts (the
    consent records' period from the withdrawal), then destroyed by the purge, and recorded."""
    workspace = copy_workspace(purged["workspace"], tmp_path / "scopes-later")
    days = purge_module.load_categories()["consent_records"].retention_days
    rows = query(
        workspace.raw_db,
        "select count(*), max(event_at), count(*) filter (where keep_until = event_at + to_days(?)) "
        "from audit.consent_scopes where scope_kind = 'withdrawal'",
        [days],
    )
    count, newest, dated = rows[0]
    assert count > 0 and dated == count
    kept = query(
        workspace.raw_db,
        "select sum(row_count), min(method), min(reason) from audit.destruction_log "
        "where source_table = 'audit.consent_scopes' and run_id = ?",
        [purged["result"].run_id],
    )
    assert kept == [
        (
            query(workspace.raw_db, "select count(*) from audit.consent_scopes")[0][0],
            "keep_rows",
            purge_module.SCOPE_REASON,
        )
    ], "the destruction log says what the purge kept and why"
    # The day before the last withdrawal expires, its scope is still there.
    still = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=newest + dt.timedelta(days=days - 1),
        dry_run=True,
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    expiring = sum(
        r.row_count
        for r in still.records
        if r.source_table == "audit.consent_scopes" and r.reason == "retention_expired"
    )
    assert 0 < expiring < count
    later = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=newest + dt.timedelta(days=days + 1),
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    expired = [
        r
        for r in later.records
        if r.source_table == "audit.consent_scopes" and r.reason == "retention_expired"
    ]
    assert sum(r.row_count for r in expired) == count
    assert query(
        workspace.raw_db,
        "select count(*) from audit.consent_scopes where scope_kind = 'withdrawal'",
    ) == [(0,)]


def test_kept_scopes_hold_keyed_values_only(purged: dict[str, Any]) -> None:
    """Every value of audit.consent_scopes is a keyed pseudonym (or a code), and no pseudonym is
    a plain hash of a raw or normalised identifier of the landing zone."""
    raw_db = purged["workspace"].raw_db
    rows = query(
        raw_db,
        "select scope_kind, event_id, coalesce(purpose_code, ''), member_id_type, member_key "
        "from audit.consent_scopes",
    )
    assert rows
    keyed = re.compile(r"v[0-9]+_([0-9a-f]{64})")
    # A bare md5 or sha1 fails the shape check above; a sha256 could hide behind the prefix.
    digests: set[str] = set()
    for table in sources.landing_tables():
        typed = [(column, f"'{id_type}'") for column, id_type in table.identifier_columns]
        typed += [(column, f"lower(trim({kind}))") for column, kind in table.typed_columns]
        for column, kind in typed:
            for value, id_type in query(
                raw_db, f"select distinct {column}, {kind} from {table.qualified}"
            ):
                if value is None:
                    continue
                variants = {str(value), str(value).strip(), str(value).strip().lower()}
                norm = normalised(id_type, str(value))
                if norm:
                    variants |= {norm, f"{id_type}:{norm}"}
                digests |= {hashlib.sha256(v.encode()).hexdigest() for v in variants}
    hexes: list[str] = []
    for row in rows:
        for cell in row:
            for token in str(cell).split(":"):
                match = keyed.fullmatch(token)
                assert match or re.fullmatch(r"[a-z_]*", token), f"not a keyed value: {token!r}"
                if match:
                    hexes.append(match.group(1))
    assert hexes and not digests.intersection(hexes)


def test_dry_run_writes_nothing(built: Workspace, tmp_path: Path) -> None:
    workspace = copy_workspace(built, tmp_path / "dry")
    digest = hashlib.sha256(workspace.raw_db.read_bytes()).hexdigest()
    result = purge(
        raw_db=workspace.raw_db,
        warehouse_db=workspace.warehouse_db,
        as_of=parse_as_of(PURGE_AS_OF),
        dry_run=True,
        environ={"CDP_MASTER_KEY": workspace.key},
    )
    assert result.dry_run and result.rows() > 0
    assert hashlib.sha256(workspace.raw_db.read_bytes()).hexdigest() == digest


def test_cli_help_and_clear_errors(built: Workspace, tmp_path: Path) -> None:
    script = ROOT / "scripts" / "purge.py"
    shown = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    assert "--as-of" in shown.stdout and "--dry-run" in shown.stdout
    bad = subprocess.run(
        [sys.executable, str(script), "--as-of", "yesterday", "--dry-run"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "CDP_MASTER_KEY": built.key},
    )
    assert bad.returncode == 1
    assert "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(PurgeError, match="CDP_MASTER_KEY"):
        purge(
            raw_db=built.raw_db,
            warehouse_db=built.warehouse_db,
            as_of=PURGE_AS_OF_TS,
            dry_run=True,
            environ={},
        )
    with pytest.raises(PurgeError, match="dbt build"):
        purge(
            raw_db=built.raw_db,
            warehouse_db=tmp_path / "missing.duckdb",
            as_of=PURGE_AS_OF_TS,
            dry_run=True,
            environ={"CDP_MASTER_KEY": built.key},
        )
    other_key = "Zq8" + built.key[3:][::-1]
    with pytest.raises(PurgeError, match="another master key"):
        purge(
            raw_db=built.raw_db,
            warehouse_db=built.warehouse_db,
            as_of=PURGE_AS_OF_TS,
            dry_run=True,
            environ={"CDP_MASTER_KEY": other_key},
        )
