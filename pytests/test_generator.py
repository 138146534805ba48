"""The synthetic landing-zone generator: contract, determinism, batches, truth, dirt, CLI.

Real DuckDB files in temporary folders, a few hundred persons each.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import catalogue
from cdp.contract import TABLES, full_columns
from cdp.generator import GenerationError, Options, Summary, generate
from cdp.generator.activity import MESSAGE_CHANNELS, SIMULATED_PURPOSES
from cdp.generator.cli import main
from cdp.generator.truth import RECORD_KEYS, TRUTH_TABLES

ROOT = Path(__file__).resolve().parents[1]
REF = dt.date(2026, 11, 1)
LOAD_1 = dt.datetime(2026, 11, 1, 2, 0)
N = 300
RATE = 0.1
RAW_TABLES = [(s, t) for s in TABLES for t in TABLES[s]]
EVENT_TYPES = {
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
    "search",
    "login",
    "signup",
    "form_submit",
}
# The catalogue the generated codes must belong to (seeds/purposes.csv, seeds/channels.csv).
PURPOSE_CODES = catalogue.consent_purpose_codes()
CHANNELS = {c.channel for c in catalogue.channels()}
REQUEST_TYPES = {"access", "rectification", "erasure", "restriction", "objection", "portability"}
CLEAN_EMAIL = r"^[a-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
E164 = r"^\+[0-9]{10,14}$"


@dataclass(frozen=True)
class Generated:
    raw: Path
    truth: Path
    summary: Summary


def _generate(folder: Path, **overrides: Any) -> Generated:
    opts: dict[str, Any] = {
        "customers": N,
        "seed": 7,
        "reference_date": REF,
        "dirty_rate": RATE,
        "raw_db": folder / "raw.duckdb",
        "truth_db": folder / "truth.duckdb",
        "quiet": True,
    }
    opts.update(overrides)
    summary = generate(Options(**opts))
    return Generated(Path(opts["raw_db"]), Path(opts["truth_db"]), summary)


def _copy(g: Generated, folder: Path) -> Generated:
    folder.mkdir(parents=True)
    raw, truth = folder / "raw.duckdb", folder / "truth.duckdb"
    shutil.copy2(g.raw, raw)
    shutil.copy2(g.truth, truth)
    return Generated(raw, truth, g.summary)


@contextmanager
def _open(g: Generated) -> Iterator[duckdb.DuckDBPyConnection]:
    """The raw database, read-only, with the truth file attached as ``t``."""
    con = duckdb.connect(str(g.raw), read_only=True)
    try:
        con.execute(f"attach '{g.truth}' as t (read_only)")
        yield con
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def _count(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> int:
    return int(_one(con, f"select count(*) from {table} where {where}"))


def _distinct(con: duckdb.DuckDBPyConnection, column: str, table: str) -> set[Any]:
    return {r[0] for r in _rows(con, f"select distinct {column} from {table}")}


def _in(values: Any) -> str:
    """A SQL list literal."""
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


def _table_contents(path: Path, names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {n: con.execute(f"select * from {n} order by all").fetchall() for n in names}
    finally:
        con.close()


RAW_NAMES = [f"{s}.{t}" for s, t in RAW_TABLES]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return _generate(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return _generate(tmp_path_factory.mktemp("clean"), dirty_rate=0.0)


@pytest.fixture(scope="module")
def incremental(
    base: Generated, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Generated, Generated]:
    """(batch 1 alone, the same files after batch 2)."""
    folder = tmp_path_factory.mktemp("incremental") / "db"
    _copy(base, folder)
    return base, _generate(folder, batch=2, customers=None, reference_date=None)


# ------------------------------------------------------------------ contract


def test_the_simulated_purposes_and_channels_are_the_catalogues() -> None:
    """The generator's own parameters name only what the catalogue holds: every purpose it
    simulates is a consent purpose of seeds/purposes.csv, every channel a row of
    seeds/channels.csv, and it simulates every channel (a purpose it does not simulate is
    allowed: a new purpose gets no synthetic consents until it is given rates)."""
    assert set(SIMULATED_PURPOSES) <= set(PURPOSE_CODES)
    assert len(set(SIMULATED_PURPOSES)) == len(SIMULATED_PURPOSES)
    assert set(MESSAGE_CHANNELS) == CHANNELS


def test_raw_database_matches_the_contract_exactly(base: Generated) -> None:
    with _open(base) as con:
        tables = _rows(
            con,
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_catalog = current_database() order by 1, 2",
        )
        assert sorted((s, t) for s, t, _ in tables) == sorted(RAW_TABLES)
        assert {kind for _, _, kind in tables} == {"BASE TABLE"}
        schemas = {
            r[0]
            for r in _rows(
                con,
                "select schema_name from information_schema.schemata "
                "where catalog_name = current_database()",
            )
        }
        assert schemas - {"main"} == set(TABLES)
        for schema, table in RAW_TABLES:
            got = _rows(
                con,
                "select column_name, data_type from information_schema.columns "
                f"where table_catalog = current_database() and table_schema = '{schema}' "
                f"and table_name = '{table}' order by ordinal_position",
            )
            assert got == list(full_columns(schema, table)), f"{schema}.{table}"
            not_null = _rows(
                con,
                "select column_name from information_schema.columns "
                f"where table_catalog = current_database() and table_schema = '{schema}' "
                f"and table_name = '{table}' and is_nullable = 'NO' order by 1",
            )
            assert not_null == [("_batch_id",), ("_loaded_at",)], f"{schema}.{table}"
            assert _one(con, f"select count(*) from {schema}.{table}") > 0


def test_loader_columns_are_filled_near_the_load_time(base: Generated) -> None:
    with _open(base) as con:
        for name in RAW_NAMES:
            batches, lo, hi = _rows(
                con,
                f"select list(distinct _batch_id), min(_loaded_at), max(_loaded_at) from {name}",
            )[0]
            assert batches == ["batch_0001"]
            assert LOAD_1 <= lo <= hi <= LOAD_1 + dt.timedelta(hours=1)
            assert _one(con, f"select count(*) from {name} where _loaded_at is null") == 0


def test_history_spans_about_three_years_before_the_reference_date(base: Generated) -> None:
    with _open(base) as con:
        lo, hi = _rows(
            con,
            "select min(created_at), max(created_at) from crm.customers",
        )[0]
        assert dt.datetime(2023, 10, 1) <= lo < dt.datetime(2024, 6, 1)
        assert hi < dt.datetime(2026, 11, 1)


# -------------------------------------------------------------- determinism


def test_same_seed_gives_identical_data_and_other_seed_differs(
    base: Generated, tmp_path: Path
) -> None:
    twin = _generate(tmp_path / "twin")
    assert _table_contents(twin.raw, RAW_NAMES) == _table_contents(base.raw, RAW_NAMES)
    names = list(TRUTH_TABLES)
    assert _table_contents(twin.truth, names) == _table_contents(base.truth, names)

    other = _generate(tmp_path / "other", seed=8)
    mine = _table_contents(base.raw, RAW_NAMES)
    theirs = _table_contents(other.raw, RAW_NAMES)
    for name in RAW_NAMES:
        assert mine[name] != theirs[name], name
    with _open(base) as a, _open(other) as b:
        emails_a = {r[0] for r in _rows(a, "select value from t.identifiers where id_type='email'")}
        emails_b = {r[0] for r in _rows(b, "select value from t.identifiers where id_type='email'")}
        assert len(emails_a & emails_b) < 0.1 * len(emails_a)


# ------------------------------------------------------------------ batches


def test_batch_two_appends_and_leaves_batch_one_untouched(
    incremental: tuple[Generated, Generated],
) -> None:
    first, second = incremental
    before = _table_contents(first.raw, RAW_NAMES)
    with _open(second) as con:
        for name in RAW_NAMES:
            kept = _rows(con, f"select * from {name} where _batch_id = 'batch_0001' order by all")
            assert kept == before[name], name
            assert {r[0] for r in _rows(con, f"select distinct _batch_id from {name}")} == {
                "batch_0001",
                "batch_0002",
            }, name
            lo = _one(con, f"select min(_loaded_at) from {name} where _batch_id = 'batch_0002'")
            assert lo > LOAD_1 + dt.timedelta(hours=23)

        def new(sql: str) -> int:
            return int(_one(con, sql))

        b1, b2 = "_batch_id = 'batch_0001'", "_batch_id = 'batch_0002'"
        # new customers and changed CRM versions (later updated_at)
        assert new(
            f"select count(*) from crm.customers where {b2} and customer_id not in "
            f"(select customer_id from crm.customers where {b1})"
        )
        assert new(
            f"select count(*) from crm.customers c where {b2} and updated_at > "
            f"(select max(updated_at) from crm.customers p where {b1} "
            "and p.customer_id = c.customer_id)"
        )
        assert new(
            f"select count(*) from web.events where {b2} and event_id not in "
            f"(select event_id from web.events where {b1})"
        )
        assert new(
            f"select count(*) from shop.orders where {b2} and order_id not in "
            f"(select order_id from shop.orders where {b1})"
        )
        assert new(
            f"select count(*) from shop.orders o where {b2} and updated_at > "
            f"(select max(updated_at) from shop.orders p where {b1} and p.order_id = o.order_id)"
        )
        assert new(f"select count(*) from shop.order_items where {b2}")
        assert new(f"select count(*) from messaging.message_events where {b2}")
        assert new(f"select count(*) from privacy.consent_events where {b2} and action = 'grant'")
        assert new(
            f"select count(*) from privacy.consent_events where {b2} and action = 'withdraw'"
        )
        assert new(f"select count(*) from privacy.subject_requests where {b2}")
        # a consent captured before batch 1 was loaded, delivered in batch 2
        assert new(
            f"select count(*) from privacy.consent_events where {b2} "
            f"and captured_at < timestamp '{LOAD_1}'"
        )
        # exact re-deliveries of batch-1 rows
        cols = ", ".join(c for c, _ in TABLES["web"]["events"])
        assert new(
            f"select count(*) from (select {cols} from web.events where {b2} "
            f"intersect select {cols} from web.events where {b1})"
        )
        # the truth file grew by batch 2 as well
        for name in ("persons", "records", "identifiers", "withdrawals", "requests", "profiles"):
            assert new(f"select count(*) from t.{name} where {b2}"), name
        assert _rows(con, "select batch_id from t.batches order by batch_no") == [
            ("batch_0001",),
            ("batch_0002",),
        ]


def test_generating_a_present_batch_again_fails_and_changes_nothing(
    incremental: tuple[Generated, Generated], tmp_path: Path
) -> None:
    _, second = incremental
    copy = _copy(second, tmp_path / "again")
    before = _table_contents(copy.raw, RAW_NAMES)
    with pytest.raises(GenerationError, match=r"batch 2 .* already present"):
        _generate(tmp_path / "again", batch=2, customers=None, reference_date=None)
    with pytest.raises(GenerationError, match="already present"):
        _generate(tmp_path / "again", batch=1)
    assert _table_contents(copy.raw, RAW_NAMES) == before


def test_a_batch_needs_all_earlier_batches(base: Generated, tmp_path: Path) -> None:
    _copy(base, tmp_path / "gap")
    with pytest.raises(GenerationError, match=r"requires batches 1\.\.2"):
        _generate(tmp_path / "gap", batch=3, customers=None, reference_date=None)
    with pytest.raises(GenerationError, match=r"requires batches 1\.\.1"):
        _generate(tmp_path / "empty", batch=2, customers=None, reference_date=None)


def test_later_batches_keep_batch_one_reference_date(base: Generated, tmp_path: Path) -> None:
    _copy(base, tmp_path / "ref")
    with pytest.raises(GenerationError, match="differs from batch 1"):
        _generate(tmp_path / "ref", batch=2, customers=None, reference_date=dt.date(2027, 1, 1))


# -------------------------------------------------------------------- truth


def test_truth_is_a_separate_file_with_its_own_tables(base: Generated) -> None:
    assert base.truth != base.raw
    con = duckdb.connect(str(base.truth), read_only=True)
    try:
        names = _distinct(con, "table_name", "information_schema.tables")
    finally:
        con.close()
    assert names == set(TRUTH_TABLES)
    with _open(base) as con:
        raw_names = {
            r[0]
            for r in _rows(
                con,
                "select table_name from information_schema.tables "
                "where table_catalog = current_database()",
            )
        }
        assert not raw_names & set(TRUTH_TABLES)


@pytest.mark.parametrize("which", ["base", "incremental"])
def test_every_person_related_raw_row_maps_to_a_person(
    which: str, request: pytest.FixtureRequest
) -> None:
    got = request.getfixturevalue(which)
    g: Generated = got[1] if isinstance(got, tuple) else got
    with _open(g) as con:
        duplicated_keys = _one(
            con,
            "select count(*) from (select schema_name, table_name, record_key "
            "from t.records group by all having count(*) > 1)",
        )
        assert duplicated_keys == 0
        for (schema, table), key in RECORD_KEYS.items():
            join = (
                f"from {schema}.{table} x left join t.records r on r.schema_name = '{schema}' "
                f"and r.table_name = '{table}' and r.record_key = {key}"
            )
            missing = _one(con, f"select count(*) {join} where r.record_key is null")
            assert missing == 0, f"{schema}.{table}"
            nobody = _one(con, f"select count(*) {join} where r.person_id is null")
            if (schema, table) != ("web", "events"):
                assert nobody == 0, f"{schema}.{table}"
        # only crawler traffic belongs to nobody
        crawlers = _rows(
            con,
            "select distinct x.user_agent, x.customer_id from web.events x "
            "join t.records r on r.table_name = 'events' and r.record_key = x.event_id "
            "where r.person_id is null",
        )
        assert crawlers
        for agent, customer in crawlers:
            assert customer is None and re.search(r"bot|python-requests", agent, re.I), agent
        unknown = _one(
            con,
            "select count(*) from t.records where person_id is not null "
            "and person_id not in (select person_id from t.persons)",
        )
        assert unknown == 0


@pytest.mark.parametrize("which", ["base", "incremental"])
def test_truth_identifiers_agree_with_the_raw_data(
    which: str, request: pytest.FixtureRequest
) -> None:
    got = request.getfixturevalue(which)
    g: Generated = got[1] if isinstance(got, tuple) else got
    with _open(g) as con:
        # every CRM record id is an identifier of the person the record maps to
        assert (
            _one(
                con,
                """
            select count(*) from t.records r
            where r.table_name = 'customers' and not exists (
                select 1 from t.identifiers i where i.id_type = 'customer_id'
                and i.value = r.record_key and i.person_id = r.person_id)
            """,
            )
            == 0
        )
        # a logged-in web event's anonymous id belongs to the customer's person
        assert (
            _one(
                con,
                """
            select count(*) from web.events e
            join t.records r on r.table_name = 'events' and r.record_key = e.event_id
            where e.customer_id is not null and not exists (
                select 1 from t.identifiers i where i.id_type = 'anonymous_id'
                and i.value = e.anonymous_id and i.person_id = r.person_id)
            """,
            )
            == 0
        )
        # identifiers used by several persons are exactly the listed shared ones
        shared = _rows(
            con,
            "select id_type, value from t.identifiers group by all "
            "having count(distinct person_id) > 1 order by all",
        )
        listed = _rows(
            con,
            "select id_type, value from t.shared_identifiers "
            "where reason = 'family_mailbox' order by all",
        )
        assert shared and shared == listed
        assert _one(con, "select count(*) from t.withdrawals") == _one(
            con,
            "select count(distinct consent_event_id) from privacy.consent_events "
            "where action = 'withdraw'",
        )
        assert _one(con, "select count(*) from t.requests") == _one(
            con, "select count(distinct request_id) from privacy.subject_requests"
        )


# --------------------------------------------------------------- relations


def test_realistic_relations(base: Generated) -> None:
    with _open(base) as con:
        several_devices = _one(
            con,
            "select count(*) from (select person_id from t.devices group by 1 having count(*) > 1)",
        )
        assert several_devices > 0
        # a cookie first anonymous, later logged in
        assert _one(
            con,
            """
            select count(*) from (
                select anonymous_id from web.events group by 1
                having count(*) filter (where customer_id is null) > 0
                   and count(*) filter (where customer_id is not null) > 0
                   and min(event_at) filter (where customer_id is null)
                       < min(event_at) filter (where customer_id is not null))
            """,
        )
        assert _count(con, "web.events", "event_type = 'login'")
        assert _count(con, "web.events", "event_type = 'signup'")
        guest = "customer_id is null and (email is not null or phone is not null)"
        assert _count(con, "shop.orders", guest)
        # duplicate CRM records: two customer ids of one person share an e-mail or a phone
        assert _one(
            con,
            """
            select count(*) from crm.customers a join crm.customers b
              on a.customer_id < b.customer_id
             and (a.email = b.email or a.phone = b.phone)
            join t.records ra on ra.table_name = 'customers' and ra.record_key = a.customer_id
            join t.records rb on rb.table_name = 'customers' and rb.record_key = b.customer_id
            where ra.person_id = rb.person_id
            """,
        )
        subject_types = _distinct(con, "subject_id_type", "privacy.consent_events")
        assert subject_types == {"customer_id", "email", "phone", "anonymous_id"}
        # one person granting through different identifiers
        assert _one(
            con,
            """
            select count(*) from (
                select r.person_id from privacy.consent_events c
                join t.records r on r.table_name = 'consent_events'
                 and r.record_key = c.consent_event_id
                group by 1 having count(distinct c.subject_id_type) >= 2)
            """,
        )
        purposes = _distinct(con, "purpose_code", "t.withdrawals")
        assert purposes <= set(PURPOSE_CODES) and len(purposes) >= 3
        assert _distinct(con, "request_type", "privacy.subject_requests") == REQUEST_TYPES
        assert _distinct(con, "jurisdiction", "privacy.subject_requests") == {"RU", "EU"}
        assert _count(con, "privacy.subject_requests", "not is_verified")
        for details, rtype in _rows(
            con,
            "select details, request_type from privacy.subject_requests "
            "where json_valid(details) and request_type in ('rectification', 'objection')",
        ):
            parsed = json.loads(details)
            if rtype == "rectification":
                assert set(parsed) == {"field", "value"} and parsed["value"]
            else:
                assert parsed["purpose_code"] in PURPOSE_CODES
        # message recipients match the channel
        for channel, recipient in _rows(
            con,
            "select channel, trim(recipient) from messaging.message_events "
            "where channel in ('email', 'sms', 'push', 'messenger')",
        ):
            if channel == "email":
                assert "@" in recipient or recipient.count(".") >= 1
            elif channel == "push":
                assert recipient.startswith(("fcm:", "apns:"))
            else:
                assert re.fullmatch(r"[+0-9 ()-]{10,20}", recipient), recipient
        assert _count(con, "messaging.message_events", "customer_id is null")
        message_events = _distinct(con, "event_type", "messaging.message_events")
        assert message_events >= {
            "sent",
            "delivered",
            "opened",
            "clicked",
            "bounced",
            "unsubscribed",
            "complained",
        }


# --------------------------------------------------------------------- dirt


EXPECTED_KINDS = {
    ("crm", "customers"): {
        "duplicate", "email_padded", "email_mixed_case", "email_invalid", "junk_email",
        "phone_format", "phone_junk", "junk_phone", "name_extra_spaces", "name_mixed_case",
        "name_yo_spelling", "birth_date_future", "birth_date_implausible", "unknown_gender",
        "country_lower_case", "country_null",
    },
    ("web", "events"): {
        "duplicate", "late_arrival", "future_event_at", "unknown_event_type", "broken_json",
        "pii_in_url", "pii_in_search",
    },
    ("shop", "orders"): {
        "duplicate", "negative_amount", "null_amount", "unknown_status", "unknown_currency",
        "unknown_channel", "email_padded", "phone_format", "junk_email", "junk_phone",
    },
    ("shop", "order_items"): {"duplicate", "bad_quantity", "null_amount"},
    ("messaging", "message_events"): {
        "duplicate", "unknown_event_type", "unknown_channel", "email_padded", "phone_format",
    },
    ("privacy", "consent_events"): {
        "duplicate", "unknown_purpose", "unknown_channel", "missing_evidence", "email_padded",
        "phone_format",
    },
    ("privacy", "subject_requests"): {"duplicate", "broken_json"},
}  # fmt: skip


def test_dirt_is_near_the_requested_rate(base: Generated) -> None:
    with _open(base) as con:
        total_rows = total_dirty = 0
        for schema, table in RAW_TABLES:
            rows = _one(con, f"select count(*) from {schema}.{table}")
            dirty, dups = _rows(
                con,
                f"select count(*), count(*) filter (where kind = 'duplicate') from t.dirt "
                f"where schema_name = '{schema}' and table_name = '{table}'",
            )[0]
            originals = rows - dups
            total_rows += originals
            total_dirty += dirty
            if originals > 1500:  # big enough for the share to be meaningful
                assert 0.08 <= dirty / originals <= 0.12, f"{schema}.{table}"
        assert 0.08 <= total_dirty / total_rows <= 0.12


def test_every_kind_of_dirt_occurs(base: Generated) -> None:
    with _open(base) as con:
        for (schema, table), kinds in EXPECTED_KINDS.items():
            got = {
                r[0]
                for r in _rows(
                    con,
                    f"select distinct kind from t.dirt where schema_name = '{schema}' "
                    f"and table_name = '{table}'",
                )
            }
            assert kinds <= got, f"{schema}.{table}: missing {kinds - got}"


RU_PHONE_FORMATS = (
    r"^\+7 \(\d{3}\) \d{3}-\d{2}-\d{2}$",
    r"^8\d{10}$",
    r"^8-\d{3}-\d{3}-\d{2}-\d{2}$",
)
ORDER_STATUSES = {"placed", "paid", "shipped", "delivered", "cancelled", "returned"}
ORDER_CHANNELS = {"web", "app", "store", "call_centre"}
CONSENT_CHANNELS = {"web_form", "mobile_app", "store", "call_centre", "email_link", "sms_reply"}


def test_dirt_is_visible_in_the_raw_data(base: Generated) -> None:
    with _open(base) as con:
        crm, web, orders = "crm.customers", "web.events", "shop.orders"
        consents, requests = "privacy.consent_events", "privacy.subject_requests"
        assert _count(con, web, "not json_valid(properties)")
        assert _count(con, requests, "not json_valid(details)")
        assert _count(con, web, "event_at > _loaded_at")  # client clock in the future
        assert _count(con, web, "received_at > event_at + interval 1 hour")  # late
        assert _count(con, crm, "email = 'test@test.ru'")
        assert _count(con, crm, "phone = '+70000000000'") + _count(
            con, orders, "phone = '+70000000000'"
        )
        # a family mailbox used by the CRM records of at least two different persons
        assert _one(
            con,
            """
            select count(*) from (
                select c.email from crm.customers c
                join t.records r on r.table_name = 'customers' and r.record_key = c.customer_id
                join t.shared_identifiers s on s.value = c.email and s.reason = 'family_mailbox'
                group by 1 having count(distinct r.person_id) >= 2)
            """,
        )
        for pattern in RU_PHONE_FORMATS:
            assert _count(con, crm, f"regexp_matches(phone, '{pattern}')") + _count(
                con, consents, f"regexp_matches(subject_id, '{pattern}')"
            ), pattern
        assert _count(con, crm, "email <> trim(email)")
        assert _count(con, crm, "email <> lower(email)")
        assert _count(con, crm, f"not regexp_matches(lower(trim(email)), '{CLEAN_EMAIL}')")
        assert _count(con, crm, "birth_date > date '2026-11-01'")
        assert _count(con, crm, "birth_date < date '1901-01-01'")
        assert _count(con, crm, "gender not in ('m', 'f')")
        assert _count(con, crm, "country_code <> upper(country_code)")
        assert _count(con, crm, "country_code is null")
        assert _count(con, crm, "first_name <> trim(first_name) or last_name <> trim(last_name)")
        assert _count(con, crm, "last_name like '%ё%' or first_name like '%ё%'")
        assert _count(con, crm, "regexp_matches(last_name, '^[А-ЯЁа-яё]')")  # noqa: RUF001
        assert _count(con, crm, "regexp_matches(last_name, '^[A-Za-z]')")
        assert _count(con, web, f"event_type not in {_in(EVENT_TYPES)}")
        assert _count(con, web, "page_url like '%email=%' and page_url like '%utm_%'")
        assert _count(con, web, "page_url like '%utm_source=%' and page_url not like '%email=%'")
        assert _count(
            con, web, "search_query like '%@%' or regexp_matches(search_query, '\\d{10}')"
        )
        assert _count(con, web, "ip_address like '%:%'")
        assert _count(con, web, "regexp_matches(ip_address, '^\\d+\\.\\d+\\.\\d+\\.\\d+$')")
        for (address,) in _rows(con, "select distinct ip_address from web.events limit 2000"):
            ipaddress.ip_address(address)  # valid IPv4 / IPv6 text
        for device in ("Windows NT", "Android", "iPhone", "iPad", "bot"):
            assert _count(con, web, f"user_agent like '%{device}%'"), device
        assert _count(con, orders, "total_amount < 0")
        assert _count(con, orders, "total_amount is null")
        assert _count(con, orders, f"status not in {_in(ORDER_STATUSES)}")
        assert _count(con, orders, "currency not in ('RUB', 'GBP', 'USD', 'EUR')")
        assert _count(con, orders, f"channel not in {_in(ORDER_CHANNELS)}")
        assert _count(con, consents, f"purpose_code not in {_in(PURPOSE_CODES)}")
        assert _count(con, consents, f"channel not in {_in(CONSENT_CHANNELS)}")
        for schema, table in RAW_TABLES:  # exact re-deliveries (loader columns aside)
            assert _one(
                con,
                f"select count(*) from (select * exclude (_loaded_at, _batch_id) "
                f"from {schema}.{table} group by all having count(*) > 1)",
            ), f"{schema}.{table}"


def test_dirty_rate_zero_gives_clean_data(clean: Generated) -> None:
    with _open(clean) as con:
        crm, web, orders = "crm.customers", "web.events", "shop.orders"
        consents, requests = "privacy.consent_events", "privacy.subject_requests"
        assert _count(con, "t.dirt") == 0
        assert _count(con, "t.shared_identifiers", "reason = 'junk_placeholder'") == 0
        for schema, table in RAW_TABLES:
            duplicated = _one(
                con,
                f"select count(*) from (select * exclude (_loaded_at, _batch_id) "
                f"from {schema}.{table} group by all having count(*) > 1)",
            )
            assert duplicated == 0, f"{schema}.{table}"
        assert _count(con, web, "not json_valid(properties)") == 0
        assert _count(con, requests, "not json_valid(details)") == 0
        late_or_future = (
            "event_at > _loaded_at or received_at < event_at "
            "or received_at > event_at + interval 1 hour"
        )
        assert _count(con, web, late_or_future) == 0
        for table in (crm, orders):
            assert _count(con, table, f"not regexp_matches(email, '{CLEAN_EMAIL}')") == 0
            assert _count(con, table, f"not regexp_matches(phone, '{E164}')") == 0
        assert _count(con, crm, "phone = '+70000000000' or email = 'test@test.ru'") == 0
        assert (
            _count(con, crm, "first_name <> trim(first_name) or last_name <> trim(last_name)") == 0
        )
        implausible = "birth_date > date '2008-11-01' or birth_date < date '1920-01-01'"
        assert _count(con, crm, implausible) == 0
        bad_codes = "gender not in ('m', 'f') or country_code <> upper(country_code)"
        assert _count(con, crm, bad_codes) == 0
        assert _count(con, crm, "country_code is null") == 0
        assert _count(con, web, f"event_type not in {_in(EVENT_TYPES)}") == 0
        assert _count(con, web, "page_url like '%email=%' or search_query like '%@%'") == 0
        assert _count(con, orders, "total_amount is null or total_amount < 0") == 0
        assert _count(con, orders, "currency not in ('RUB', 'GBP', 'USD')") == 0
        assert _count(con, orders, f"status not in {_in(ORDER_STATUSES)}") == 0
        assert _count(con, orders, f"channel not in {_in(ORDER_CHANNELS)}") == 0
        assert _count(con, "shop.order_items", "quantity <= 0 or unit_price is null") == 0
        assert _count(con, consents, f"purpose_code not in {_in(PURPOSE_CODES)}") == 0
        assert _count(con, consents, f"channel not in {_in(CONSENT_CHANNELS)}") == 0
        assert _count(con, consents, "evidence_ref is null") == 0
        message_channels = _in(CHANNELS)
        assert _count(con, "messaging.message_events", f"channel not in {message_channels}") == 0
        # the structure stays: shared family mailboxes, guests, anonymous browsing
        assert _count(con, "t.shared_identifiers", "reason = 'family_mailbox'")
        assert _count(con, orders, "customer_id is null")
        assert _count(con, web, "customer_id is null")


# ------------------------------------------------------------ files and CLI


def test_files_are_private_and_their_folder_is_created(tmp_path: Path) -> None:
    g = _generate(tmp_path / "a" / "b", customers=20)
    for path in (g.raw, g.truth):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) & 0o077 == 0


def test_cli_help_runs_as_a_script() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_landing.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0
    options = ("--customers", "--seed", "--reference-date", "--batch", "--dirty-rate")
    for option in (*options, "--raw-db", "--truth-db", "--quiet"):
        assert option in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference-date", "2026-13-01"], "invalid date"),
        (["--reference-date", "01.11.2026"], "YYYY-MM-DD"),
        (["--customers", "-1"], "must be >= 0"),
        (["--customers", "many"], "not an integer"),
        (["--dirty-rate", "1.5"], r"within \[0, 1\]"),
        (["--dirty-rate", "-0.1"], r"within \[0, 1\]"),
        (["--batch", "0"], "must be >= 1"),
    ],
)
def test_cli_rejects_bad_input(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw, truth = tmp_path / "r.duckdb", tmp_path / "t.duckdb"
    with pytest.raises(SystemExit) as exc:
        main([*args, "--raw-db", str(raw), "--truth-db", str(truth)])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not raw.exists()


def test_cli_reports_unusable_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    truth = str(tmp_path / "t.duckdb")
    assert (
        main(["--customers", "5", "--raw-db", str(blocker / "raw.duckdb"), "--truth-db", truth])
        == 1
    )
    assert "error: cannot create the folder for the raw database" in capsys.readouterr().err
    same = str(tmp_path / "same.duckdb")
    assert main(["--customers", "5", "--raw-db", same, "--truth-db", same]) == 1
    assert "separate file" in capsys.readouterr().err
    assert main(["--customers", "0", "--raw-db", same, "--truth-db", truth]) == 1
    assert "must be > 0" in capsys.readouterr().err


def test_cli_generates_and_prints_a_one_line_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw, truth = tmp_path / "raw.duckdb", tmp_path / "truth.duckdb"
    args = ["--customers", "40", "--seed", "3", "--reference-date", "2026-11-01", "--quiet"]
    assert main([*args, "--raw-db", str(raw), "--truth-db", str(truth)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("batch_0001: 40 new persons")
    counts = {
        m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"(\w+\.\w+)=([0-9,]+)", out[0])
    }
    assert set(counts) == set(RAW_NAMES)
    con = duckdb.connect(str(raw), read_only=True)
    try:
        for name in RAW_NAMES:
            assert counts[name] == _count(con, name) > 0, name
    finally:
        con.close()
