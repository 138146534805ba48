"""The Spark build the Spark tests share: one landing zone built on DuckDB and on Spark, once.

One small generated landing zone and one key file. DuckDB: the project's privacy stage as
``cdp build`` runs it (seeds, then the models ported to Spark). Spark: ``python -m
cdp.spark_stage`` in a fresh JVM (the JVM reads the key file named in its environment): the
landing zone loaded into Spark tables, the keyed functions registered behind the lockdown,
the same dbt commands on the ``spark_privacy`` target, every relation it made written out as
Parquet (``--dump``), and the key-leak audit's trail (``--audit``: the event log and tables
uncompressed, Spark's log, EXPLAIN of the models that call a keyed function).

conftest's session fixture ``spark_builds`` makes it once per ``make test-spark``:
test_spark_project.py compares the two builds, test_spark_leaks.py scans every file the
Spark build left for the key.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb

from cdp import spark_stage
from conftest import generate_landing, run_dbt

CUSTOMERS = 80
AS_OF = "2026-11-01 00:00:00"
VARS = "{as_of: '" + AS_OF + "'}"


@dataclass
class Builds:
    root: Path
    raw_db: Path
    warehouse_db: Path
    dump: Path
    key_file: Path
    spark_seconds: float
    #: What plant_scopes planted: event ids and the person keys the scopes reach.
    scopes: dict[str, str]

    @property
    def spark_workdir(self) -> Path:
        """The Spark build's folder: warehouse, metastore, dbt's target/ and logs/, its output."""
        return self.root / "spark"

    @property
    def audit(self) -> Path:
        """The audit trail (``--audit``): events/, spark.log, explain/."""
        return self.spark_workdir / "audit"


def key_file(folder: Path) -> Path:
    """A fresh random master key in an owner-only file in the new folder ``folder``."""
    folder.mkdir(mode=0o700)
    key = folder / "master.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    return key


#: The JIT option `make test-spark` gives the suite's short-lived JVMs (decision 92).
FIRST_TIER_ONLY: Final = "-XX:TieredStopAtLevel=1"


#: The collector of the tests' build JVMs (decision 96).
SERIAL_GC: Final = "-XX:+UseSerialGC"


def spark_env(key_file: Path, more: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a Spark JVM that runs dbt (a build, its tests, a Thrift
    server): the key file named, no key in a variable, the JIT's default tiers and the serial
    collector. Such a JVM plans and runs hundreds of queries for minutes, where the second tier
    pays: the shared build took 381 s wall and 641 CPU s with it, 548 s and 827 CPU s with the
    first tier only (decision 93). On a small landing zone one collector thread does the work of
    G1's several with less CPU: 4% less wall, 8% less CPU, alternating runs (decisions 95, 96)."""
    env = {k: v for k, v in os.environ.items() if k != "CDP_MASTER_KEY"}
    options = env.pop("JAVA_TOOL_OPTIONS", "").split()
    kept = [option for option in options if option != FIRST_TIER_ONLY]
    if not any(option.startswith("-XX:+Use") and option.endswith("GC") for option in kept):
        kept.append(SERIAL_GC)  # unless the caller chose a collector
    env["JAVA_TOOL_OPTIONS"] = " ".join(kept)
    env.update({"CDP_MASTER_KEY_FILE": str(key_file), "TZ": "UTC", **(more or {})})
    return env


def run_spark_stage(
    workdir: Path,
    raw_db: Path,
    key_file: Path,
    *more: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m cdp.spark_stage`` into ``workdir``; its stdout and stderr are also kept
    there (``build.out``, ``build.err``: what a console would have shown)."""
    command = [sys.executable, "-m", "cdp.spark_stage", "--raw-db", str(raw_db)]
    command += ["--workdir", str(workdir), "--vars", VARS, *more]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=spark_env(key_file, env),
        timeout=1800,  # a loaded 2-core machine: the 80-customer build took over 15 minutes at load 9-11
        check=False,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "build.out").write_text(done.stdout, encoding="utf-8")
    (workdir / "build.err").write_text(done.stderr, encoding="utf-8")
    return done


#: Subject requests added to the generated landing zone as a batch of their own: the shapes
#: where DuckDB and Spark read text differently, which 80 generated customers hardly ever
#: produce. Subject ids that match a pattern only in part, or before a final line break
#: (request_id, subject_id_type, subject_id; an access request, details '{}'):
HOSTILE_SUBJECTS: tuple[tuple[str, str, str], ...] = (
    ("DSR-9000001", "email", "abc123"),
    ("DSR-9000002", "email", "abc 123x"),
    ("DSR-9000003", "customer_id", "+7 (900) 123-45-67"),
    ("DSR-9000004", "phone", "AB12\n"),
    ("DSR-9000005", "phone", "x+79001234567"),
    ("DSR-9000006", "email", "erased-by:DSR-0000002"),
)
#: Details DuckDB reads as JSON and Spark's builtins do not, or the reverse (trailing comma,
#: text after the value, duplicate keys, NaN), and values that are no string (request_id,
#: request_type, details; the subject a customer id):
HOSTILE_DETAILS: tuple[tuple[str, str, str | None], ...] = (
    ("DSR-9000010", "rectification", '{"field": "email", "value": "New.Person@Example.com",}'),
    ("DSR-9000011", "rectification", '{"field": "phone", "value": "+7 900 123 45 67"} trailing'),
    (
        "DSR-9000012",
        "rectification",
        '{"field": "email", "field": "phone", "value": "89007654321"}',
    ),
    ("DSR-9000013", "rectification", '{"field": "phone", "value": NaN}'),
    ("DSR-9000014", "rectification", '{"field": "email", "value": {"a": 1}}'),
    ("DSR-9000015", "rectification", '{"field": " Email ", "value": "x.y@mail.ru"}'),
    ("DSR-9000016", "rectification", '{"field": "phone", "value": 79007654321}'),
    ("DSR-9000017", "objection", '{"purpose_code": " Marketing_Email ",}'),
    ("DSR-9000018", "objection", '[{"purpose_code": "profiling"}]'),
    ("DSR-9000019", "rectification", None),
)


#: Hostile identity graphs (batch ``batch_graph``), which 80 generated customers never make:
#: a chain of CHAIN_LENGTH CRM customers, each with an e-mail of its own that the previous
#: customer's order also gives (customer i - e-mail i+1 - customer i+1: a component of
#: 2 * CHAIN_LENGTH identifiers, diameter 2 * CHAIN_LENGTH - 1, its earliest identifier at the
#: far end, so the smallest label has to cross the whole chain); a star (one customer, STAR_SIZE
#: phones from its orders: one component); an e-mail given on the orders of STAR_SIZE customers
#: (refused: linked_to_too_many_customers); a junk e-mail of the seed on the orders of STAR_SIZE
#: customers (refused: junk_value).
CHAIN_LENGTH = 60
STAR_SIZE = 8
CHAIN_CUSTOMER = "CRM-0900{:04d}"
STAR_CUSTOMER = "CRM-09100000"
SHARED_EMAIL = "shared.inbox@graph-test.ru"
JUNK_EMAIL = "test@test.ru"


def plant_graphs(con: duckdb.DuckDBPyConnection) -> None:
    """The hostile identity graphs above, as CRM records and orders."""
    loaded, start = dt.datetime(2026, 10, 30, 12), dt.datetime(2026, 9, 1)
    customers: list[tuple[str, str, dt.datetime]] = []
    orders: list[tuple[str, str, str | None, str | None, dt.datetime]] = []
    for i in range(CHAIN_LENGTH):
        customer = CHAIN_CUSTOMER.format(i)
        # created later along the chain's start: its earliest identifier is its last customer
        customers.append((customer, f"chain.{i}@graph-test.ru", start - dt.timedelta(hours=i)))
        if i + 1 < CHAIN_LENGTH:
            orders.append((f"SO-09{i:08d}", customer, f"chain.{i + 1}@graph-test.ru", None, start))
    customers.append((STAR_CUSTOMER, "star.owner@graph-test.ru", start))
    for k in range(STAR_SIZE):
        phone = f"+7900555{k:04d}"
        orders.append((f"SO-091{k:07d}", STAR_CUSTOMER, None, phone, start + dt.timedelta(days=k)))
        for email, prefix in ((SHARED_EMAIL, "092"), (JUNK_EMAIL, "093")):
            customer = f"CRM-0920{prefix[-1]}{k:03d}"
            customers.append((customer, f"own.{prefix}.{k}@graph-test.ru", start))
            orders.append((f"SO-{prefix}{k:07d}", customer, email, None, start))
    for customer, email, created in customers:
        con.execute(
            "insert into crm.customers (customer_id, email, first_name, last_name, country_code, "
            "created_at, updated_at, is_deleted, _loaded_at, _batch_id) "
            "values (?, ?, 'Graph', 'Test', 'RU', ?, ?, false, ?, 'batch_graph')",
            [customer, email, created, created, loaded],
        )
    for order, buyer, given_email, given_phone, ordered in orders:
        con.execute(
            "insert into shop.orders (order_id, customer_id, email, phone, ordered_at, status, "
            "total_amount, currency, channel, payment_method, updated_at, _loaded_at, _batch_id) "
            "values (?, ?, ?, ?, ?, 'placed', 10.00, 'RUB', 'web', 'card', ?, ?, 'batch_graph')",
            [order, buyer, given_email, given_phone, ordered, ordered, loaded],
        )


#: Requests of known customers for the consent ledger (request_id, subject_id_type, subject_id,
#: request_type, details): a restriction (int_consent__person_restrictions; its kept scope below
#: reaches one more person) and a verified rectification of an e-mail
#: (int_rights__rectifications, int_consent__person_contacts), which 80 generated customers may
#: not have.
LEDGER_REQUESTS: list[tuple[str, str, str, str, str | None]] = [
    ("DSR-9000020", "customer_id", STAR_CUSTOMER, "restriction", "{}"),
    (
        "DSR-9000021",
        "customer_id",
        CHAIN_CUSTOMER.format(5),
        "rectification",
        '{"field": "email", "value": "Rectified.Five@graph-test.ru"}',
    ),
]


#: Requests of known customers for the rights models (decision 78), each its own person (the
#: shared-e-mail group of plant_graphs): (request_id, subject customer, request_type, details,
#: jurisdiction, received_at). As of AS_OF: an EU erasure the purge closed (its destruction below)
#: and an RU erasure it did not, 30 calendar days past (int_rights__erased_persons,
#: _excluded_persons, _request_executions; awaiting_purge and overdue); an RU access request past
#: its 10 working days (overdue); an EU objection received on the 31st of August, due on the
#: 30th of September (a month clamped), executed by the build and so closed late; an RU access
#: request whose 10 working days cross the 4th of November holiday (not overdue).
RIGHTS_REQUESTS: list[tuple[str, str, str, str, str, dt.datetime]] = [
    ("DSR-9000030", "CRM-09202001", "erasure", "{}", "EU", dt.datetime(2026, 10, 10, 9)),
    ("DSR-9000031", "CRM-09202002", "erasure", "{}", "RU", dt.datetime(2026, 9, 20, 23, 30)),
    ("DSR-9000032", "CRM-09202003", "access", "{}", "RU", dt.datetime(2026, 10, 1, 10)),
    (
        "DSR-9000033",
        "CRM-09202004",
        "objection",
        '{"purpose_code": "marketing_email"}',
        "EU",
        dt.datetime(2026, 8, 31, 12),
    ),
    ("DSR-9000034", "CRM-09202005", "access", "{}", "RU", dt.datetime(2026, 10, 28, 18)),
]
#: The planted erasure the purge closed (RIGHTS_REQUESTS) and when.
PURGED_ERASURE = ("DSR-9000030", dt.datetime(2026, 10, 20, 8))


#: Raw rows staging quarantines, one of each reason of the two landing tables the generator
#: leaves without one (the audit views, decision 82), in batch ``batch_quarantine``: subject
#: requests (request_id, request_type, jurisdiction, received_at: no key, an unknown type, an
#: unknown jurisdiction, no time) and a CRM customer without its key (QUARANTINED_CUSTOMER).
QUARANTINED_REQUESTS: list[tuple[str | None, str, str, dt.datetime | None]] = [
    (None, "access", "EU", dt.datetime(2026, 10, 21, 9)),
    ("DSR-9000040", "data_sale_opt_out", "EU", dt.datetime(2026, 10, 21, 9)),
    ("DSR-9000041", "access", "US", dt.datetime(2026, 10, 21, 9)),
    ("DSR-9000042", "access", "RU", None),
]
QUARANTINED_CUSTOMER = "quarantined.customer@graph-test.ru"


def plant_quarantined(con: duckdb.DuckDBPyConnection) -> None:
    """The quarantined rows above, into the landing zone."""
    loaded = dt.datetime(2026, 10, 30, 12)
    for request_id, request_type, jurisdiction, received in QUARANTINED_REQUESTS:
        con.execute(
            "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
            "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, "
            "_batch_id) values (?, 'customer_id', 'CRM-09202001', ?, ?, ?, '{}', true, ?, "
            "'batch_quarantine')",
            [request_id, request_type, jurisdiction, received, loaded],
        )
    con.execute(
        "insert into crm.customers (customer_id, email, first_name, last_name, country_code, "
        "created_at, updated_at, is_deleted, _loaded_at, _batch_id) "
        "values (null, ?, 'No', 'Key', 'RU', ?, ?, false, ?, 'batch_quarantine')",
        [QUARANTINED_CUSTOMER, loaded, loaded, loaded],
    )


#: People for the BI marts (decision 83), which 80 generated customers leave with every cohort
#: and campaign cell below k (k = 10): BI_PEOPLE customers of their own, each granting analytics
#: consent, ordering in June and in July 2026 (one cohort of BI_PEOPLE, active in its months 0
#: and 1) and sent, delivered and opened one e-mail in the week of 7 September 2026. The
#: generated data keeps many cells below k beside them, so both sides of the rules are built.
BI_PEOPLE = 12
BI_CUSTOMER = "CRM-0930{:04d}"
BI_ORDER_MONTHS = (dt.datetime(2026, 6, 10, 12), dt.datetime(2026, 7, 10, 12))
BI_MESSAGE_AT = dt.datetime(2026, 9, 8, 10)


def plant_bi_people(con: duckdb.DuckDBPyConnection) -> None:
    """The BI_PEOPLE customers above, their consent, orders and message events."""
    loaded, created = dt.datetime(2026, 10, 30, 12), dt.datetime(2026, 5, 1, 9)
    for i in range(BI_PEOPLE):
        customer, email = BI_CUSTOMER.format(i), f"bi.person.{i}@bi-test.ru"
        con.execute(
            "insert into crm.customers (customer_id, email, first_name, last_name, birth_date, "
            "city, country_code, created_at, updated_at, is_deleted, _loaded_at, _batch_id) "
            "values (?, ?, 'Bi', 'Test', ?, 'Москва', 'RU', ?, ?, false, ?, 'batch_bi')",
            [customer, email, dt.date(1990, 1, 1 + i), created, created, loaded],
        )
        con.execute(
            "insert into privacy.consent_events (consent_event_id, subject_id_type, subject_id, "
            "purpose_code, action, channel, policy_version, evidence_ref, captured_at, _loaded_at, "
            "_batch_id) values (?, 'customer_id', ?, 'analytics', 'grant', 'web_form', 'v2.1', ?, "
            "?, ?, 'batch_bi')",
            [f"00000000-0000-4000-8000-bi{i:010d}", customer, f"WF-BI{i:04d}", created, loaded],
        )
        for month, ordered in enumerate(BI_ORDER_MONTHS):
            con.execute(
                "insert into shop.orders (order_id, customer_id, email, ordered_at, status, "
                "total_amount, currency, channel, payment_method, updated_at, _loaded_at, "
                "_batch_id) values (?, ?, ?, ?, 'placed', ?, 'RUB', 'web', 'card', ?, ?, "
                "'batch_bi')",
                [f"SO-094{month}{i:06d}", customer, email, ordered, 100 + i, ordered, loaded],
            )
        for step, event_type in enumerate(("sent", "delivered", "opened")):
            con.execute(
                "insert into messaging.message_events (message_event_id, message_id, customer_id, "
                "recipient, channel, campaign_id, event_type, event_at, _loaded_at, _batch_id) "
                "values (?, ?, ?, ?, 'email', 'CMP-BI-1', ?, ?, ?, 'batch_bi')",
                [
                    f"00000000-0000-4000-9000-bi{i:07d}{step:03d}",
                    f"MSG-BI{i:08d}",
                    customer,
                    email,
                    event_type,
                    BI_MESSAGE_AT + dt.timedelta(minutes=step),
                    loaded,
                ],
            )


def plant_landing(raw_db: Path) -> None:
    """Add the hostile requests (batch ``batch_spark``), a destruction log, as the purge writes
    it, closing two of them (stg_rights__request_closures reads it), the hostile identity
    graphs (:func:`plant_graphs`), the quarantined rows (:func:`plant_quarantined`) and the BI
    marts' people (:func:`plant_bi_people`) to the
    landing zone."""
    from cdp.purge.records import LOG_COLUMNS

    loaded, received = dt.datetime(2026, 10, 30, 12), dt.datetime(2026, 10, 20, 9, 30)
    con = duckdb.connect(str(raw_db))
    try:
        plant_graphs(con)
        plant_quarantined(con)
        plant_bi_people(con)
        requests: list[tuple[str, str, str, str, str | None]] = [
            (r, t, s, "access", "{}") for r, t, s in HOSTILE_SUBJECTS
        ]
        requests += [(r, "customer_id", "C-HOSTILE-1", k, d) for r, k, d in HOSTILE_DETAILS]
        requests += LEDGER_REQUESTS
        dated = [(*request, "EU", received) for request in requests]
        dated += [(r, "customer_id", c, k, d, j, at) for r, c, k, d, j, at in RIGHTS_REQUESTS]
        for request_id, id_type, subject, request_type, details, jurisdiction, at in dated:
            con.execute(
                "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
                "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, "
                "_batch_id) values (?, ?, ?, ?, ?, ?, ?, true, ?, 'batch_spark')",
                [request_id, id_type, subject, request_type, jurisdiction, at, details, loaded],
            )
        columns = ", ".join(f"{name} {kind}" for name, kind in LOG_COLUMNS)
        con.execute("create schema if not exists audit")
        con.execute(f"create table audit.destruction_log ({columns})")
        for number, (closed, reason, destroyed) in enumerate(
            (
                ("DSR-9000003", "erasure_request", dt.datetime(2026, 10, 25, 8)),
                ("DSR-9000003", "erasure_request", dt.datetime(2026, 10, 24, 8)),
                ("DSR-9000006", "erasure_request", dt.datetime(2026, 10, 26, 8)),
                (None, "retention_expired", dt.datetime(2026, 10, 26, 9)),
                ("DSR-9000001", "inactivity_limit", dt.datetime(2026, 10, 26, 9)),
                (PURGED_ERASURE[0], "erasure_request", PURGED_ERASURE[1]),
            )
        ):
            con.execute(
                "insert into audit.destruction_log (destruction_id, run_id, destroyed_at, as_of, "
                "source_table, data_category, reason, method, row_count, keep_until, operator, "
                "tool, request_id) values (?, 'run-1', ?, ?, 'privacy.subject_requests', "
                "'subject_requests', ?, 'delete_rows', 1, ?, 'test', 'purge', ?)",
                [f"d-{number}", destroyed, destroyed, reason, destroyed, closed],
            )
    finally:
        con.close()


def duckdb_env(root: Path, raw_db: Path, key: Path) -> dict[str, str]:
    """The environment of the DuckDB build under ``root`` (conftest.run_dbt)."""
    return {
        "CDP_MASTER_KEY_FILE": str(key),
        "CDP_RAW_DB": str(raw_db),
        "CDP_WAREHOUSE_DB": str(root / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / "vault.duckdb"),
        "CDP_EVIDENCE_DIR": str(root / "evidence"),
        "CDP_PUBLISHED_DIR": str(root / "published"),
        "CDP_QUALITY_REPORT_DIR": str(root / "quality"),
    }


def make_builds(root: Path) -> Builds:
    """The landing zone, its DuckDB build and its audited Spark build, all under ``root``."""
    raw_db, key = root / "raw.duckdb", key_file(root / "keys")
    generate_landing(raw_db, root / "truth.duckdb", customers=CUSTOMERS)
    plant_landing(raw_db)
    env = duckdb_env(root, raw_db, key)
    # staging, identity and the vault; then the purge's scopes, planted from that build; then
    # the consent ledger, which reads them, the rights models, the profile, the audiences, the
    # audit views and the BI marts (one DuckDB build in two parts, no extra build)
    after = (
        *spark_stage.LEDGER_MODELS,
        *spark_stage.RIGHTS_MODELS,
        *spark_stage.PROFILE_MODELS,
        *spark_stage.AUDIENCE_MODELS,
        *spark_stage.AUDIT_MODELS,
        *spark_stage.BI_MODELS,
    )
    before = [m for m in spark_stage.PORTED_MODELS if m not in after]
    for args in (["seed", "--vars", VARS], ["run", "--vars", VARS, "--select", *before]):
        result = run_dbt(args, env, root / "duckdb")
        assert result.success, result.output[-4000:]
    planted = plant_scopes(root / "warehouse.duckdb", raw_db)
    result = run_dbt(["run", "--vars", VARS, "--select", *after], env, root / "duckdb")
    assert result.success, result.output[-4000:]
    started = time.monotonic()
    workdir = root / "spark"
    done = run_spark_stage(
        workdir, raw_db, key, "--dump", str(root / "dump"), "--audit", str(workdir / "audit")
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])
    return Builds(
        root,
        raw_db,
        root / "warehouse.duckdb",
        root / "dump",
        key,
        time.monotonic() - started,
        planted,
    )


#: An old withdrawal's scope: past the consent records' period at AS_OF, so staging drops it.
OLD_SCOPE_AT = dt.datetime(2020, 1, 1)


def plant_scopes(warehouse_db: Path, raw_db: Path) -> dict[str, str]:
    """Consent scopes as the purge keeps them (``audit.consent_scopes``, cdp.purge.scopes;
    decision 71), written into the landing zone from the DuckDB build of staging and identity:

    * ``withdrawal``: the first withdrawal of the consent log, its scope its own identifier and
      an identifier of another person who granted the same purpose before it (the withdrawal
      then closes that person's grant too: int_consent__person_events' ``scoped``);
    * ``restriction``: the planted restriction (:data:`LEDGER_REQUESTS`), its scope one more
      person's identifier (int_consent__person_restrictions);
    * ``ambiguous_grant``: the first grant of a third person, which then counts for nobody;
    * an old withdrawal scope (:data:`OLD_SCOPE_AT`), which staging leaves out by retention.

    The pseudonyms and event ids are the warehouse's own (keyed), as the purge copies them.
    Returns what was planted: the event ids and the person keys the scopes reach.
    """
    from cdp.purge.scopes import SCOPE_COLUMNS

    con = duckdb.connect(str(warehouse_db), read_only=True)
    try:
        events = con.execute(
            """
            select events.consent_event_key, events.subject_id_type, events.subject_key,
                events.purpose_code, events.action,
                least(events.captured_at, events._loaded_at) as effective_at, ids.person_key
            from staging.stg_privacy__consent_events as events
            inner join intermediate.int_identity_person_identifiers as ids
                on events.subject_key = ids.id_key
            where least(events.captured_at, events._loaded_at) <= cast(? as timestamp)
            order by events.consent_event_key
            """,
            [AS_OF],
        ).fetchall()
        (restriction_key,) = con.execute(
            "select request_key from staging.stg_privacy__subject_requests where request_id = ?",
            [LEDGER_REQUESTS[0][0]],
        ).fetchone() or (None,)
    finally:
        con.close()
    assert restriction_key, "the planted restriction was not staged"
    # the first withdrawal (in the order of its keyed id, so it depends on the random key) that
    # another person's earlier grant of the same purpose exists for: the first withdrawal alone
    # had none under some keys, and the build then stopped here (StopIteration)
    withdrawal, granted = next(
        (w, g)
        for w in events
        if w[4] == "withdraw"
        for g in events
        if g[4] == "grant" and g[3] == w[3] and g[6] != w[6] and g[5] < w[5]
    )
    restricted = next(e for e in events if e[6] not in (withdrawal[6], granted[6]))
    ambiguous = next(
        e
        for e in events
        if e[4] == "grant" and e[6] not in (withdrawal[6], granted[6], restricted[6])
    )
    recorded = dt.datetime(2026, 10, 31)
    scopes = [
        ("withdrawal", withdrawal[0], withdrawal[3], withdrawal[5], withdrawal[1], withdrawal[2]),
        ("withdrawal", withdrawal[0], withdrawal[3], withdrawal[5], granted[1], granted[2]),
        ("restriction", restriction_key, None, None, restricted[1], restricted[2]),
        ("ambiguous_grant", ambiguous[0], ambiguous[3], ambiguous[5], ambiguous[1], ambiguous[2]),
        ("withdrawal", "old-withdrawal", withdrawal[3], OLD_SCOPE_AT, granted[1], granted[2]),
    ]
    con = duckdb.connect(str(raw_db))
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in SCOPE_COLUMNS)
        con.execute(f"create table audit.consent_scopes ({columns})")
        for kind, event_id, purpose, event_at, member_type, member_key in scopes:
            keep_until = event_at + dt.timedelta(days=1096) if kind == "withdrawal" else None
            con.execute(
                "insert into audit.consent_scopes (scope_kind, event_id, purpose_code, event_at, "
                "member_id_type, member_key, run_id, recorded_at, keep_until) "
                "values (?, ?, ?, ?, ?, ?, 'run-1', ?, ?)",
                [kind, event_id, purpose, event_at, member_type, member_key, recorded, keep_until],
            )
    finally:
        con.close()
    return {
        "withdrawal_id": withdrawal[0],
        "withdrawal_purpose": withdrawal[3],
        "scoped_person": granted[6],
        "restriction_key": restriction_key,
        "restricted_person": restricted[6],
        "ambiguous_grant_id": ambiguous[0],
    }
