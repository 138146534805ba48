"""Erasure to the byte: `cdp erase` leaves nothing of the person in any file the product owns.

The attack is a reader of every file: the raw zone, the warehouse, the vault,
published releases, target/, logs/, evidence, reports and the auditor pack,
read as bytes (decompressed where the format compresses: Parquet, gzip, zip)
and, for DuckDB files, as live data too (DuckDB compresses strings, so bytes
alone could miss a live value). One person's identifiers are planted in every
raw table and every free-text field, on their own devices, on a device that
never logged in and on another person's search; after `cdp erase` none of them
is found, nor the person's pseudonyms, and two later builds (plain and
``--full-refresh``) re-create nothing.

The attack's own power is shown first: before the erasure it finds every
planted value; and a deleted row's bytes survive DuckDB's ``DELETE`` +
``CHECKPOINT`` + ``VACUUM`` (the weak configuration) but not the rewrite.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp import destroy, erase, evidence, keys, normalise, pseudonym, purge, vault
from conftest import Workspace, copy_workspace, environment, run_dbt

pytestmark = pytest.mark.slow  # a long module: xdist starts it first (conftest)

# A later batch is written later (contract: _loaded_at is when the loader wrote the row).
LOADED_AT = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
BATCH = "erasure-test"
CUSTOMER_ID = "CUST-ERASE-77001"
EMAIL = "Zelda.Obliviate@Example.org"
PHONE = "+7 (912) 555-01-23"
PHONE_E164 = "+79125550123"
CARD = "LC-ERASE-889977"
PASSPORT = "4510 778899"
FIRST, LAST = "Zelda", "Obliviate"
ADDRESS = "17 Forgotten Lane, flat 3"
OWN_DEVICE = "dev-erase-own-5521"
ANON_DEVICE = "dev-erase-anon-7734"  # never logs in; carries the email in a URL
ANON_DEVICE_2 = "dev-erase-anon-9911"  # never logs in; carries the phone, percent-encoded
PUSH_TOKEN = "push-erase-token-31337"
ERASURE_REQUEST = "DSR-ERASE-TEST-1"


def needles() -> dict[str, bytes]:
    """label -> lower-case bytes that must appear nowhere after the erasure."""
    values = {
        "customer_id": CUSTOMER_ID,
        "email": EMAIL,
        "email normalised": normalise.normalise_email(EMAIL) or "",
        "email local part": "zelda.obliviate",
        "phone e164": PHONE_E164,
        "phone national": "89125550123",
        "phone digits": "9125550123",
        "phone spaced": "912) 555-01-23",
        "phone encoded": "%2b79125550123",
        "card": CARD,
        "card normalised": "lcerase889977",
        "passport": PASSPORT,
        "passport digits": "4510778899",
        "name": f"{FIRST} {LAST}",
        "surname": LAST,
        "address": ADDRESS,
        "own device": OWN_DEVICE,
        "anonymous device": ANON_DEVICE,
        "anonymous device 2": ANON_DEVICE_2,
        "push token": PUSH_TOKEN,
    }
    return {label: value.lower().encode() for label, value in values.items()}


# --------------------------------------------------------------------------- planting


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if not table.startswith("main."):  # the ground truth has no loader columns
            row.setdefault("_loaded_at", LOADED_AT)
        row.setdefault("_batch_id", BATCH)
    names = sorted({name for row in rows for name in row})
    data = pa.table({name: [row.get(name) for row in rows] for name in names})
    con.register("planted_rows", data)
    con.execute(f"insert into {table} by name select * from planted_rows")
    con.unregister("planted_rows")


def plant_truth(truth_db: Path) -> None:
    """The person in the generator's ground truth too, as a demo's data folder holds it."""
    con = duckdb.connect(str(truth_db))
    try:
        person = {"person_id": "P-ERASE-1", "_batch_id": BATCH}
        _insert(con, "main.persons", [{**person, "first_name": FIRST, "last_name": LAST}])
        _insert(
            con,
            "main.profiles",
            [
                {
                    **person,
                    "customer_id": CUSTOMER_ID,
                    "email": EMAIL,
                    "phone": PHONE,
                    "push_token": PUSH_TOKEN,
                    "loyalty_card_number": CARD,
                    "address": ADDRESS,
                }
            ],
        )
        _insert(
            con,
            "main.identifiers",
            [
                {**person, "id_type": id_type, "value": value}
                for id_type, value in (
                    ("customer_id", CUSTOMER_ID),
                    ("email", EMAIL),
                    ("phone", PHONE),
                    ("anonymous_id", OWN_DEVICE),
                )
            ],
        )
        _insert(con, "main.devices", [{**person, "anonymous_id": OWN_DEVICE}])
    finally:
        con.close()


def plant(raw_db: Path) -> str:
    """The person in every raw table and free-text field; returns another customer's id."""
    con = duckdb.connect(str(raw_db))
    try:
        other = con.execute(
            "select customer_id from crm.customers where customer_id is not null "
            "order by customer_id limit 1"
        ).fetchall()
        assert other
        other_customer = str(other[0][0])
        other_device = f"dev-other-{secrets.token_hex(4)}"
        customer = {
            "customer_id": CUSTOMER_ID,
            "email": f"  {EMAIL} ",
            "phone": PHONE,
            "first_name": FIRST,
            "last_name": LAST,
            "birth_date": dt.date(1990, 5, 17),
            "gender": "f",
            "city": "Moscow",
            "postal_code": "101000",
            "address": ADDRESS,
            "country_code": "ru",
            "passport_number": PASSPORT,
            "loyalty_card_number": CARD,
            "is_deleted": False,
        }
        _insert(
            con,
            "crm.customers",
            [
                {
                    **customer,
                    "created_at": dt.datetime(2025, 3, 1),
                    "updated_at": dt.datetime(2025, 3, 1),
                },
                {
                    **customer,
                    "created_at": dt.datetime(2025, 3, 1),
                    "updated_at": dt.datetime(2026, 9, 1),
                },
            ],
        )
        at = dt.datetime(2026, 10, 10, 9, 0)
        web: list[dict[str, Any]] = [
            # own device, logged in; properties carry the email
            {"anonymous_id": OWN_DEVICE, "customer_id": CUSTOMER_ID, "event_type": "login"},
            {
                "anonymous_id": OWN_DEVICE,
                "customer_id": CUSTOMER_ID,
                "event_type": "form_submit",
                "properties": f'{{"form": "profile", "contact": "{EMAIL}", "phone": "{PHONE}"}}',
            },
            # a device that never logged in: the email in a URL, then a plain page view
            {
                "anonymous_id": ANON_DEVICE,
                "event_type": "page_view",
                "page_url": f"https://shop.example/account?email={EMAIL.replace('@', '%40')}&utm_source=mail",
            },
            {
                "anonymous_id": ANON_DEVICE,
                "event_type": "page_view",
                "page_url": "https://shop.example/",
            },
            # another never-logged-in device: the phone percent-encoded, and typed in search
            {
                "anonymous_id": ANON_DEVICE_2,
                "event_type": "page_view",
                "page_url": "https://shop.example/callback?phone=%2B7%20912%20555-01-23",
            },
            {
                "anonymous_id": ANON_DEVICE_2,
                "event_type": "search",
                "search_query": "call me 8 912 555 01 23",
            },
            # someone else's logged-in search for the person by name (that row goes, not them)
            {"anonymous_id": other_device, "customer_id": other_customer, "event_type": "login"},
            {
                "anonymous_id": other_device,
                "customer_id": other_customer,
                "event_type": "search",
                "search_query": f"{FIRST} {LAST} gift",
            },
            {
                "anonymous_id": other_device,
                "customer_id": other_customer,
                "event_type": "search",
                "search_query": f"found passport {PASSPORT.replace(' ', '-')}",
            },
        ]
        for number, row in enumerate(web):
            row.update(
                event_id=f"ev-erase-{number}",
                event_at=at + dt.timedelta(minutes=number),
                received_at=at + dt.timedelta(minutes=number, seconds=2),
                ip_address="10.1.2.3",
                user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            )
            row.setdefault("page_url", "https://shop.example/p/1")
        _insert(con, "web.events", web)
        order = {
            "order_id": "ORD-ERASE-1",
            "customer_id": CUSTOMER_ID,
            "email": EMAIL,
            "phone": PHONE,
            "ordered_at": dt.datetime(2026, 9, 20, 14, 0),
            "status": "delivered",
            "total_amount": 1999,
            "currency": "RUB",
            "channel": "web",
            "delivery_address": ADDRESS,
            "delivery_city": "Moscow",
            "payment_method": "card",
            "updated_at": dt.datetime(2026, 9, 21),
        }
        guest = {**order, "order_id": "ORD-ERASE-2", "customer_id": None, "phone": None}
        # someone else's gift, delivered "for" the person: that order stays, its address goes
        gift = {
            **order,
            "order_id": "ORD-ERASE-GIFT",
            "customer_id": other_customer,
            "email": None,
            "phone": None,
            "delivery_address": f"Lenina 5, for {EMAIL}",
        }
        _insert(con, "shop.orders", [order, guest, gift])
        _insert(
            con,
            "shop.order_items",
            [
                {
                    "order_id": "ORD-ERASE-1",
                    "line_number": 1,
                    "product_sku": "SKU-1",
                    "product_name": "Teapot",
                    "category": "home",
                    "quantity": 1,
                    "unit_price": 1999,
                }
            ],
        )
        messages = [
            ("email", EMAIL, "opened"),
            ("sms", PHONE, "delivered"),
            ("push", PUSH_TOKEN, "delivered"),
        ]
        _insert(
            con,
            "messaging.message_events",
            [
                {
                    "message_event_id": f"me-erase-{n}",
                    "message_id": f"m-erase-{n}",
                    "customer_id": CUSTOMER_ID,
                    "recipient": recipient,
                    "channel": channel,
                    "campaign_id": "CMP-1",
                    "event_type": event,
                    "event_at": dt.datetime(2026, 10, 1, 10, n),
                }
                for n, (channel, recipient, event) in enumerate(messages)
            ],
        )
        consents = [
            ("customer_id", CUSTOMER_ID, "personalisation"),
            ("email", EMAIL, "email_marketing"),
            ("phone", PHONE, "sms_marketing"),
            ("anonymous_id", OWN_DEVICE, "analytics"),
        ]
        _insert(
            con,
            "privacy.consent_events",
            [
                {
                    "consent_event_id": f"ce-erase-{n}",
                    "subject_id_type": id_type,
                    "subject_id": value,
                    "purpose_code": purpose,
                    "action": "grant",
                    "channel": "web_form",
                    "policy_version": "v3",
                    "evidence_ref": f"form-erase-{n}",
                    "captured_at": dt.datetime(2025, 3, 1, 12, n),
                }
                for n, (id_type, value, purpose) in enumerate(consents)
            ],
        )
        request = {"jurisdiction": "EU", "is_verified": True}
        _insert(
            con,
            "privacy.subject_requests",
            [
                {
                    **request,
                    "request_id": "DSR-ERASE-TEST-0",
                    "subject_id_type": "email",
                    "subject_id": EMAIL,
                    "request_type": "access",
                    "received_at": dt.datetime(2026, 10, 5),
                    "details": "{}",
                },
                {
                    **request,
                    "request_id": "DSR-ERASE-TEST-R",
                    "subject_id_type": "customer_id",
                    "subject_id": CUSTOMER_ID,
                    "request_type": "rectification",
                    "received_at": dt.datetime(2026, 10, 6),
                    "details": f'{{"field": "phone", "value": "{PHONE}"}}',
                },
                {
                    **request,
                    "request_id": ERASURE_REQUEST,
                    "subject_id_type": "customer_id",
                    "subject_id": CUSTOMER_ID,
                    "request_type": "erasure",
                    "received_at": dt.datetime(2026, 10, 20),
                    "details": "{}",
                },
            ],
        )
    finally:
        con.close()
    return other_customer


# --------------------------------------------------------------------------- the attack


def _decompressed(path: Path, data: bytes) -> list[bytes]:
    """The file's bytes, and what a format that compresses holds, as text bytes."""
    found = [data]
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            table = pq.read_table(path)
            found.append(repr(table.to_pylist()).encode("utf-8", "replace"))
        elif name.endswith(".gz"):
            found.append(gzip.decompress(data))
        elif name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                found += [archive.read(member) for member in archive.namelist()]
    except Exception as exc:  # a file that claims a format it does not have is still read as bytes
        found.append(repr(exc).encode())
    return found


def _live_strings(path: Path) -> bytes:
    """Every string value of every table of a DuckDB file, as one text (lower case)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        parts: list[str] = []
        columns = con.execute(
            "select schema_name, table_name, column_name from duckdb_columns() "
            "where database_name = current_database() and data_type in ('VARCHAR', 'JSON', 'VARCHAR[]')"
        ).fetchall()
        for schema, table, column in columns:
            rows = con.execute(
                f'select distinct lower(cast("{column}" as varchar)) from "{schema}"."{table}" '
                f'where "{column}" is not null'
            ).fetchall()
            parts += [str(r[0]) for r in rows]
        return "\n".join(parts).encode()
    finally:
        con.close()


def scan(
    root: Path, wanted: dict[str, bytes], skip: tuple[Path, ...] = ()
) -> list[tuple[str, str]]:
    """(file, label) for every needle found in any file under root."""
    hits: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or any(path == s for s in skip):
            continue
        data = path.read_bytes()
        texts = _decompressed(path, data)
        if path.suffix == ".duckdb":
            texts.append(_live_strings(path))
        where = str(path.relative_to(root))
        for text in texts:
            lowered = text.lower()
            for label, needle in wanted.items():
                if needle in lowered and (where, label) not in hits:
                    hits.append((where, label))
    return hits


def person_pseudonyms(ws: Workspace) -> dict[str, bytes]:
    """The person's identity-domain pseudonyms (what the warehouse and vault keyed them by)."""
    master = keys.load_master_key({"CDP_MASTER_KEY": ws.key})
    identity = keys.pseudonym_key(master, "identity")
    found: dict[str, bytes] = {}
    for id_type, value in (
        ("customer_id", CUSTOMER_ID),
        ("email", EMAIL),
        ("phone", PHONE),
        ("loyalty_card", CARD),
        ("anonymous_id", OWN_DEVICE),
        ("anonymous_id", ANON_DEVICE),
        ("push_token", PUSH_TOKEN),
    ):
        normalised = normalise.normalise_identifier(id_type, value)
        key = pseudonym.pseudonym(identity, master.version, id_type, normalised)
        assert key is not None
        found[f"{id_type} pseudonym {value}"] = key.lower().encode()
    return found


# --------------------------------------------------------------------------- fixture


def vault_rows_held(ws: Workspace, reason: str) -> int:
    """The privacy officer's `vault find` of the person's email (a logged lookup): rows held."""
    master = keys.load_master_key({"CDP_MASTER_KEY": ws.key})
    con = duckdb.connect(str(ws.vault_db))
    try:
        found = vault.find(
            con, master, "email", EMAIL, vault.Request(officer="dpo", reason=reason, action="find")
        )
    finally:
        con.close()
    return found.rows_held


@dataclass
class Erasure:
    workspace: Workspace
    before: list[tuple[str, str]]
    pseudonyms: dict[str, bytes]
    person_keys: dict[str, bytes]
    other_customer: str
    exit_code: int
    interrupted_code: int


def _cdp_env(ws: Workspace) -> dict[str, str]:
    return {
        **ws.env,
        "DBT_TARGET_PATH": str(ws.root / "target"),
        "DBT_LOG_PATH": str(ws.root / "logs"),
        "CDP_DISCLOSURE_STATE_DIR": str(ws.root / "disclosure"),
        "CDP_PUBLISHED_MODE": "owner",
    }


@pytest.fixture(scope="module")
def erasure(built: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Erasure]:
    ws = copy_workspace(built, tmp_path_factory.mktemp("erasure"))
    other = plant(ws.raw_db)
    plant_truth(ws.truth_db)
    from cdp import cli

    with environment(_cdp_env(ws)):
        assert cli.main(["build"]) == 0  # builds and publishes a release holding the person
    assert (ws.root / "published" / "marts.duckdb").exists()
    con = duckdb.connect(str(ws.warehouse_db), read_only=True)
    try:
        wanted = {p.decode() for p in person_pseudonyms(ws).values()}
        person_keys = {
            f"person_key {r[0]}": str(r[0]).lower().encode()
            for r in con.execute(
                "select distinct person_key from intermediate.int_consent__subject_persons "
                "where subject_key in (select unnest(?))",
                [sorted(wanted)],
            ).fetchall()
        }
    finally:
        con.close()
    assert person_keys, "the planted person must be resolved before the erasure"
    # The privacy officer looked the person up once (an access request): the log holds it.
    assert vault_rows_held(ws, "DSR-ERASE-TEST-0 access") == 1
    searched = {**needles(), **person_pseudonyms(ws), **person_keys}
    before = scan(ws.root, searched)
    # The first run is interrupted after the purge (the vault is held by another process);
    # the second must finish everything the first left: what this module checks is the state
    # after both.
    real = destroy.rewrite_database

    def held_vault(path: Path) -> destroy.Rewritten | None:
        if path == ws.vault_db:
            raise destroy.DestroyError(f"cannot open {path}: it is held by another process")
        return real(path)

    with pytest.MonkeyPatch.context() as mp, environment(_cdp_env(ws)):
        mp.setattr(destroy, "rewrite_database", held_vault)
        interrupted = erase.main([])
    with environment(_cdp_env(ws)):
        code = erase.main([])
    with environment(_cdp_env(ws)):
        assert cli.main(["pack", "--out", str(ws.root / "pack")]) in (0, 1)
    yield Erasure(ws, before, person_pseudonyms(ws), person_keys, other, code, interrupted)


# --------------------------------------------------------------------------- tests


# Forms the person's values take only after normalisation (never stored in plaintext by
# the product, so not there before either): searched for after, not required before.
DERIVED = frozenset(
    {
        "phone e164",
        "phone national",
        "phone digits",
        "phone encoded",
        "card normalised",
        "passport digits",
    }
)


def test_the_scan_finds_every_planted_value_before_the_erasure(erasure: Erasure) -> None:
    labels = {label for _, label in erasure.before}
    planted = set(needles()) - DERIVED
    assert planted <= labels, planted - labels
    # and it reads every kind of file: the raw zone, the warehouse and the vault (pseudonyms)
    files = {where.split("/")[0] for where, _ in erasure.before}
    assert {"raw.duckdb", "warehouse.duckdb", "vault.duckdb"} <= files, files
    assert set(erasure.pseudonyms) <= labels and set(erasure.person_keys) <= labels


def test_after_cdp_erase_no_file_holds_anything_of_the_person(erasure: Erasure) -> None:
    ws = erasure.workspace
    # interrupted once (exit 1, after the purge), finished by the next run (ground truth and
    # old releases included: they are judged by the proofs, not by that run's requests)
    assert (erasure.interrupted_code, erasure.exit_code) == (1, 0)
    # The generator's ground truth (a demo's data folder holds it) included.
    wanted = {**needles(), **erasure.pseudonyms, **erasure.person_keys}
    hits = scan(ws.root, wanted)
    assert not hits, hits
    # the folders the attack read are really there
    for folder in ("target", "logs", "published", "pack", "evidence"):
        assert any((ws.root / folder).rglob("*")), folder
    # the rebuild's tests are in the evidence record like any build's, and the chain holds
    entries = evidence.read_entries(ws.root / "evidence")
    verdict = evidence.verdict(entries[-1])
    assert len(entries) == 2 and verdict.tests > 0 and verdict.failed == 0, verdict
    assert evidence.verify(ws.root / "evidence") == []


def test_the_erasure_is_provable_and_the_request_closed(erasure: Erasure) -> None:
    ws = erasure.workspace
    env = {"CDP_MASTER_KEY": ws.key}
    for id_type, value in (("email", EMAIL), ("phone", PHONE), ("customer_id", CUSTOMER_ID)):
        proofs = purge.erasure_status(ws.raw_db, id_type, value, environ=env)
        assert [p.request_id for p in proofs] == [ERASURE_REQUEST], (id_type, proofs)
    assert purge.erasure_status(ws.raw_db, "email", "nobody@example.org", environ=env) == []
    con = duckdb.connect(str(ws.raw_db), read_only=True)
    try:
        requests = con.execute(
            "select request_id, subject_id, details from privacy.subject_requests "
            "where request_id like 'DSR-ERASE-TEST-%' order by request_id"
        ).fetchall()
        subjects = {
            r[0]
            for r in con.execute(
                "select distinct subject_key from audit.destruction_log where request_id = ?",
                [ERASURE_REQUEST],
            ).fetchall()
        }
    finally:
        con.close()
    with duckdb.connect(str(ws.vault_db)) as log:
        check = vault.verify_log(log, keys.load_master_key(env))
    assert check.ok, check.problems  # the log lost the pseudonym, not its chain
    assert requests == [
        (rid, f"erased-by:{ERASURE_REQUEST}", None)
        for rid in ("DSR-ERASE-TEST-0", ERASURE_REQUEST, "DSR-ERASE-TEST-R")
    ]
    # destruction records name the subject by the proof: no key any table shares
    assert len(subjects) == 1 and next(iter(subjects)).startswith("erased_")
    tracked = duckdb.connect(str(ws.warehouse_db), read_only=True)
    try:
        status = tracked.execute(
            "select request_status from intermediate.int_rights__request_tracking where request_id = ?",
            [ERASURE_REQUEST],
        ).fetchall()
    finally:
        tracked.close()
    assert status == [("closed",)]


def test_the_other_persons_search_row_went_but_not_the_other_person(erasure: Erasure) -> None:
    con = duckdb.connect(str(erasure.workspace.raw_db), read_only=True)
    try:
        rows = con.execute(
            "select count(*) filter (where search_query is not null), count(*) from web.events "
            "where customer_id = ? and _batch_id = ?",
            [erasure.other_customer, BATCH],
        ).fetchone()
        customer = con.execute(
            "select count(*) from crm.customers where customer_id = ?", [erasure.other_customer]
        ).fetchone()
    finally:
        con.close()
    assert rows == (0, 1)  # their login stays; the searches naming the erased person are gone
    con = duckdb.connect(str(erasure.workspace.raw_db), read_only=True)
    try:
        gift = con.execute(
            "select customer_id, delivery_address, total_amount from shop.orders "
            "where order_id = 'ORD-ERASE-GIFT'"
        ).fetchall()
    finally:
        con.close()
    assert gift == [(erasure.other_customer, None, 1999)]
    assert customer is not None and customer[0] >= 1


def test_later_builds_recreate_nothing_of_the_person(erasure: Erasure) -> None:
    ws = erasure.workspace
    wanted = {**needles(), **erasure.pseudonyms, **erasure.person_keys}
    # What a later build writes is its models' (data tests write nothing: the project stores no
    # test failures, and the erasure's own rebuild was tested above), so `run` is the build here.
    for args in (("run",), ("run", "--full-refresh")):
        result = run_dbt(args, _cdp_env(ws), ws.root)
        assert result.success, result.output[-4000:]
        for db in (ws.raw_db, ws.warehouse_db, ws.vault_db):
            live = _live_strings(db).lower()
            found = [label for label, needle in wanted.items() if needle in live]
            assert not found, (args, db.name, found)
    # the vault does not hold the erased email again (checked last: a lookup is logged)
    assert vault_rows_held(ws, "erasure check") == 0


def test_a_deleted_rows_bytes_survive_delete_and_vacuum_but_not_the_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "weak.duckdb"
    victim = f"{secrets.token_hex(12)}@example.org"
    con = duckdb.connect(str(path))
    try:
        con.execute("pragma force_compression='uncompressed'")
        con.execute("create table t (id integer, email varchar)")
        emails = [f"{secrets.token_hex(12)}@example.org" for _ in range(50_000)]
        emails[123] = victim
        con.register("rows", pa.table({"id": list(range(len(emails))), "email": emails}))
        con.execute("insert into t select * from rows")
        con.execute("checkpoint")
        con.execute("delete from t where id < 1000")
        con.execute("checkpoint")
        con.execute("vacuum")
    finally:
        con.close()
    assert victim.encode() in path.read_bytes()  # the weak configuration: the attack succeeds
    done = destroy.rewrite_database(path)
    assert done is not None and done.rows == 49_000
    assert victim.encode() not in path.read_bytes()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("select count(*) from t").fetchone() == (49_000,)
    finally:
        con.close()
    assert not list(tmp_path.glob(".weak.duckdb.rewrite-*"))
