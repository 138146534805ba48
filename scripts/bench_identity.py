#!/usr/bin/env python3
"""Benchmark identity resolution on a synthetic identifier graph of N customers.

    .venv/bin/python scripts/bench_identity.py --customers 1000000

No landing zone, no staging build: the script writes, straight into a fresh
warehouse file, the six staging tables the identity models read
(``staging.stg_*_triaged`` and the current-record views), shaped like the
generator's output per person (CRM records with duplicates and earlier
versions, family mailboxes, cookies and logins, orders with guest checkouts,
messages, consent events, junk placeholders). Pseudonyms are 67-character
``v1_<sha256>`` strings, like real ones; the junk placeholders are real
pseudonyms under the run's random key, so the junk guard fires.

Then it runs the identity models with dbt (the same SQL as every build), each
dbt run in its own process, and prints per-model seconds, the total and the
process's peak RSS:

  1. full build (dbt run --select intermediate.identity);
  2. a second batch (new logins, orders and messages for ~2% of the persons,
     0.1% new persons, a few merges), run incrementally;
  3. unless --no-verify, a --full-refresh of the same state, compared row by
     row with the incremental result.

--portable runs the portable connected-components implementation instead of
DuckDB's USING KEY one (for comparison). --memory-limit caps DuckDB's memory
(a copy of the project's profile with that setting goes to the workdir);
without it DuckDB may use 80% of the RAM as cache, and the peak RSS shows
that rather than what the work needs. Files go to --workdir (default: a
temporary folder, removed unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import yaml  # type: ignore[import-untyped]

try:
    from cdp import contract, keys, normalise, paths, pseudonym
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cdp import contract, keys, normalise, paths, pseudonym

JUNK: Final = (("email", "test@test.ru"), ("email", "no@mail.ru"), ("phone", "+79999999999"))
LOADED_1: Final = "timestamp '2026-11-01 02:00:00'"
LOADED_2: Final = "timestamp '2026-11-02 02:00:00'"

# Per person, as the generator makes them (measured on a 20,000-customer batch):
# 1.19 CRM rows, 31 web events (24 logged in, 1.4 logged-in cookies), 3.3 order
# rows, 9.7 message events, 4.4 consent events, 0.015 subject requests.
SYNTHESIS: Final[tuple[str, ...]] = (
    # persons: households (every 4th may start one of 2-3), contacts, attributes
    """
    create or replace temp table persons as
    with base as (
        select
            range as p,
            (hash(range, 1) % 1000000) / 1e6 as u1,
            (hash(range, 2) % 1000000) / 1e6 as u2,
            (hash(range, 3) % 1000000) / 1e6 as u3,
            (hash(range, 4) % 1000000) / 1e6 as u4,
            (hash(range, 5) % 1000000) / 1e6 as u5,
            (hash(range, 6) % 1000000) / 1e6 as u6,
            (hash(range, 7) % 1000000) / 1e6 as u7
        from range({n})
    ),
    heads as (
        select p as head, case when u2 < 0.35 then 3 else 2 end as size
        from base where p % 4 = 0 and u1 < 0.06
    ),
    members as (
        select heads.head, heads.head + offs.range as p
        from heads cross join range(3) as offs
        where offs.range < heads.size and heads.head + offs.range < {n}
    )
    select
        base.p,
        members.head as household,
        case
            when members.head is not null then 'v1_' || sha256('email:family' || members.head)
            when base.u3 < 0.93 then 'v1_' || sha256('email:' || base.p)
        end as email_key,
        case when base.u4 < 0.88 or (base.u3 >= 0.93 and members.head is null)
            then 'v1_' || sha256('phone:' || base.p) end as phone_key,
        case when base.u5 < 0.55 then 'v1_' || sha256('loyalty_card:' || base.p) end as loyalty_key,
        'v1_' || sha256('customer_id:' || base.p) as customer_key,
        case when base.u6 < 0.85 then 1940 + cast(base.u7 * 60 as integer) end as birth_year,
        case when base.u6 < 0.92 then case when base.u2 < 0.53 then 'f' else 'm' end end as gender,
        timestamp '2023-11-01' + to_microseconds(cast(base.u1 * 94608000000000 as bigint)) as signup_at,
        1 + case when base.u7 < 0.55 then 0 when base.u7 < 0.85 then 1 when base.u7 < 0.97 then 2 else 3 end
            as n_devices,
        cast(floor(base.u2 * 6.5) as integer) as n_orders,
        1 + cast(floor(base.u5 * 2.8) as integer) as n_recipients,
        base.u6 < 0.14 as has_app
    from base
    left join members on base.p = members.p
    """,
    # CRM: primary records, duplicates (6% + 1.2%), earlier versions (12%), junk contacts (0.3%)
    """
    create or replace table staging.stg_crm__customers_triaged as
    with records as (
        select p, customer_key, email_key, phone_key, loyalty_key, birth_year, gender,
            signup_at as created_at, signup_at + interval 30 day as updated_at, 'kept' as row_status
        from persons
        union all
        select p, 'v1_' || sha256('customer_id:dup' || p || ':' || d.range),
            case when variant <> 1 then email_key
                 when (hash(p, 11) % 2) = 0 then 'v1_' || sha256('email:second' || p) end,
            case when variant <> 0 then phone_key end,
            case when (hash(p, 12) % 5) = 0 then loyalty_key end,
            case when (hash(p, 13) % 5) < 2 then birth_year end,
            case when (hash(p, 14) % 2) = 0 then gender end,
            signup_at + interval 90 day, signup_at + interval 90 day, 'kept'
        from (
            select *, cast(hash(p, 15) % 3 as integer) as variant
            from persons
        ) as dup_persons
        cross join range(2) as d
        where (d.range = 0 and (hash(p, 16) % 1000) < 60) or (d.range = 1 and (hash(p, 17) % 1000) < 12)
        union all
        select p, customer_key, email_key,
            case when (hash(p, 18) % 10) < 3 then 'v1_' || sha256('phone:old' || p) else phone_key end,
            loyalty_key, birth_year, gender, signup_at, signup_at, 'superseded'
        from persons
        where (hash(p, 19) % 100) < 12
    )
    select
        customer_key,
        case when (hash(p, 20) % 1000) < 3 then {junk_email} else email_key end as email_key,
        case when (hash(p, 21) % 1000) < 3 then {junk_phone} else phone_key end as phone_key,
        loyalty_key as loyalty_card_key,
        birth_year, gender, created_at, updated_at, row_status,
        {loaded_1} as _loaded_at
    from records
    """,
    # devices, logins and anonymous browsing
    """
    create or replace temp table devices as
    select persons.p, persons.customer_key, persons.signup_at,
        'v1_' || sha256('anonymous_id:' || persons.p || ':' || d.range) as anonymous_key,
        (hash(persons.p, d.range, 30) % 100) < 96 as logs_in
    from persons cross join range(4) as d
    where d.range < persons.n_devices
    """,
    """
    create or replace table staging.stg_web__events_triaged as
    select
        'e' || devices.p || ':' || devices.anonymous_key[4:12] || ':' || e.range as event_key,
        devices.anonymous_key,
        case when devices.logs_in and e.range < 17 then devices.customer_key end as customer_key,
        devices.signup_at + to_microseconds(cast(e.range * 86400000000 * 3 as bigint)) as event_at,
        'kept' as row_status,
        {loaded_1} as _loaded_at
    from devices cross join range(23) as e
    """,
    # orders: 10% guest checkouts, 30% with an earlier version
    """
    create or replace table staging.stg_shop__orders_triaged as
    with orders as (
        select persons.*, o.range as o,
            'SO-' || persons.p || '-' || o.range as order_key,
            (hash(persons.p, o.range, 40) % 10) = 0 as is_guest,
            (hash(persons.p, o.range, 41) % 100) < 75 as is_online
        from persons cross join range(7) as o
        where o.range < persons.n_orders
    ),
    rows as (
        select order_key,
            case when not is_guest then customer_key end as customer_key,
            case when is_online or (hash(p, o, 42) % 100) < 15 then email_key end as email_key,
            case when not is_online or (hash(p, o, 43) % 100) < 70 then phone_key end as phone_key,
            signup_at + to_microseconds(cast(o * 86400000000 * 20 as bigint)) as ordered_at,
            'kept' as row_status, p, o
        from orders
    )
    select order_key, customer_key, email_key, phone_key, ordered_at, row_status, {loaded_1} as _loaded_at
    from rows
    union all
    select order_key, customer_key, email_key, phone_key, ordered_at, 'superseded', {loaded_1}
    from rows where (hash(p, o, 44) % 100) < 30
    """,
    # messages: to the person's e-mail, phone or push token; 10% without a known customer
    """
    create or replace table staging.stg_messaging__message_events_triaged as
    with recipients as (
        select persons.*, r.range as r,
            case
                when persons.has_app and r.range = 2 then 'push_token'
                when r.range = 1 and persons.phone_key is not null then 'phone'
                when persons.email_key is not null then 'email'
                else 'phone'
            end as recipient_type
        from persons cross join range(3) as r
        where r.range < persons.n_recipients
    )
    select
        'm' || p || ':' || r || ':' || m.range as message_event_key,
        case when (hash(p, r, m.range, 50) % 10) > 0 then customer_key end as customer_key,
        recipient_type,
        case recipient_type
            when 'email' then email_key
            when 'phone' then phone_key
            else 'v1_' || sha256('push_token:' || p)
        end as recipient_key,
        signup_at + to_microseconds(cast(m.range * 86400000000 * 7 as bigint)) as event_at,
        'kept' as row_status,
        {loaded_1} as _loaded_at
    from recipients cross join range(5) as m
    where recipient_type <> 'phone' or phone_key is not null
    """,
    # consent: by customer id (2.1), cookie (1.4), e-mail (0.5), phone (0.4) per person
    """
    create or replace table staging.stg_privacy__consent_events_triaged as
    select
        'c' || persons.p || ':' || c.range as consent_event_key,
        case
            when c.range < 2 then 'customer_id'
            when c.range = 2 and persons.email_key is not null then 'email'
            when c.range = 3 and persons.phone_key is not null then 'phone'
            else 'anonymous_id'
        end as subject_id_type,
        case
            when c.range < 2 then persons.customer_key
            when c.range = 2 and persons.email_key is not null then persons.email_key
            when c.range = 3 and persons.phone_key is not null then persons.phone_key
            else 'v1_' || sha256('anonymous_id:' || persons.p || ':0')
        end as subject_key,
        persons.signup_at as captured_at,
        'kept' as row_status,
        {loaded_1} as _loaded_at
    from persons cross join range(5) as c
    where c.range < 4 or (hash(persons.p, 60) % 10) < 4
    """,
    """
    create or replace table staging.stg_privacy__subject_requests_triaged as
    select
        'r' || p as request_id,
        'rk' || p as request_key,
        'customer_id' as subject_id_type,
        customer_key as subject_key,
        signup_at + interval 100 day as received_at,
        'kept' as row_status,
        {loaded_1} as _loaded_at
    from persons
    where (hash(p, 70) % 1000) < 15
    """,
)

# The second batch: ~2% of persons active again, 0.1% new persons, guest orders merging pairs.
BATCH_2: Final[tuple[str, ...]] = (
    """
    insert into staging.stg_web__events_triaged
    select
        'e2:' || devices.p || ':' || devices.anonymous_key[4:12] || ':' || e.range,
        devices.anonymous_key,
        devices.customer_key,
        timestamp '2026-11-01 12:00:00',
        'kept',
        {loaded_2}
    from devices cross join range(3) as e
    where (hash(devices.p, 80) % 100) < 2
    """,
    """
    insert into staging.stg_crm__customers_triaged
    select
        'v1_' || sha256('customer_id:new' || range),
        'v1_' || sha256('email:new' || range),
        'v1_' || sha256('phone:new' || range),
        null, null, null,
        timestamp '2026-11-01 10:00:00', timestamp '2026-11-01 10:00:00', 'kept', {loaded_2}
    from range({n_new})
    """,
    """
    insert into staging.stg_shop__orders_triaged
    select
        'SO2-' || first_person.p,
        null,
        first_person.email_key,
        second_person.phone_key,
        timestamp '2026-11-01 11:00:00',
        'kept',
        {loaded_2}
    from persons as first_person
    inner join persons as second_person
        on second_person.p = first_person.p + 1
    where (hash(first_person.p, 81) % 10000) < 5
        and first_person.household is null and second_person.household is null
        and first_person.email_key is not null and second_person.phone_key is not null
    """,
    """
    insert into staging.stg_messaging__message_events_triaged
    select
        'm2:' || p,
        customer_key,
        'email',
        email_key,
        timestamp '2026-11-01 09:00:00',
        'kept',
        {loaded_2}
    from persons
    where email_key is not null and (hash(p, 82) % 100) < 5
    """,
)

CURRENT_VIEWS: Final = (
    ("stg_crm__customers", "stg_crm__customers_triaged"),
    ("stg_shop__orders", "stg_shop__orders_triaged"),
    ("stg_messaging__message_events", "stg_messaging__message_events_triaged"),
    ("stg_privacy__consent_events", "stg_privacy__consent_events_triaged"),
    ("stg_privacy__subject_requests", "stg_privacy__subject_requests_triaged"),
)
IDENTITY_TABLES: Final = (
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


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    model_seconds: dict[str, float]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark identity resolution (the dbt models) on a synthetic graph."
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="persons (default 1e6)")
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument(
        "--portable",
        action="store_true",
        help="use the portable connected-components implementation, not DuckDB's USING KEY",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the --full-refresh run that checks the incremental result",
    )
    parser.add_argument("--threads", type=int, help="DuckDB threads for synthesis (default: all)")
    parser.add_argument(
        "--memory-limit",
        help="DuckDB memory_limit for the dbt runs, e.g. 4GB (default: DuckDB's, 80%% of RAM)",
    )
    args = parser.parse_args(argv)
    if args.customers < 100:
        parser.error("--customers: at least 100")
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _junk_keys(key_env: dict[str, str]) -> dict[str, str]:
    """Real pseudonyms of a few junk placeholders, so that the seed-driven guard fires."""
    master = keys.load_master_key(key_env)
    domain_key = keys.pseudonym_key(master, "identity")
    result: dict[str, str] = {}
    for id_type, value in JUNK:
        key = pseudonym.pseudonym(
            domain_key, master.version, id_type, normalise.normalise_identifier(id_type, value)
        )
        assert key is not None
        result[id_type] = key
    return result


def synthesise(
    warehouse_db: Path, customers: int, junk: dict[str, str], threads: int | None
) -> dict[str, int]:
    con = duckdb.connect(str(warehouse_db))
    try:
        if threads:
            con.execute(f"set threads = {int(threads)}")
        con.execute("create schema if not exists staging")
        values = {
            "n": str(customers),
            "loaded_1": LOADED_1,
            "junk_email": f"'{junk['email']}'",
            "junk_phone": f"'{junk['phone']}'",
        }
        for sql in SYNTHESIS:
            con.execute(sql.format(**values))
        for view, table in CURRENT_VIEWS:
            con.execute(
                f"create or replace view staging.{view} as "
                f"select * from staging.{table} where row_status = 'kept'"
            )
        # keep what batch 2 needs
        con.execute("create or replace table bench_persons as select * from persons")
        con.execute("create or replace table bench_devices as select * from devices")
        return _counts(con, [table for _, table in CURRENT_VIEWS] + ["stg_web__events_triaged"])
    finally:
        con.close()


def second_batch(warehouse_db: Path, customers: int) -> dict[str, int]:
    con = duckdb.connect(str(warehouse_db))
    try:
        con.execute("create or replace temp view persons as select * from bench_persons")
        con.execute("create or replace temp view devices as select * from bench_devices")
        values = {"loaded_2": LOADED_2, "n_new": str(max(customers // 1000, 1))}
        before = _counts(con, [table for _, table in CURRENT_VIEWS] + ["stg_web__events_triaged"])
        for sql in BATCH_2:
            con.execute(sql.format(**values))
        after = _counts(con, list(before))
        return {table: after[table] - before[table] for table in before}
    finally:
        con.close()


def _counts(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        row = con.execute(f"select count(*) from staging.{table}").fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


WRAPPER: Final = """
import resource, subprocess, sys
process = subprocess.run(sys.argv[1:])
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"BENCH_PEAK_RSS_KB={peak_kb}", flush=True)
raise SystemExit(process.returncode)
"""


def _peak_rss_line(output: str) -> float:
    for line in reversed(output.splitlines()):
        if line.startswith("BENCH_PEAK_RSS_KB="):
            return int(line.split("=", 1)[1]) / 1024
    return float("nan")


def write_profile(workdir: Path, memory_limit: str) -> Path:
    """The project's profile with a DuckDB memory_limit on the ci target, in the workdir."""
    profiles = yaml.safe_load((paths.PROJECT_ROOT / "profiles.yml").read_text())
    profiles["cdp"]["outputs"]["ci"].setdefault("settings", {})["memory_limit"] = memory_limit
    (workdir / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    return workdir


def run_dbt_measured(args: list[str], env: dict[str, str], target: Path, profiles_dir: Path) -> Run:
    """dbt through a wrapper process whose only child is dbt: RUSAGE_CHILDREN is dbt's peak."""
    dbt = Path(sys.executable).with_name("dbt")
    command = [
        sys.executable,
        "-c",
        WRAPPER,
        str(dbt),
        *args,
        "--project-dir",
        str(paths.PROJECT_ROOT),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(target / "target"),
        "--log-path",
        str(target / "logs"),
    ]
    started = time.perf_counter()
    outcome = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    output = outcome.stdout + outcome.stderr
    if outcome.returncode != 0:
        print(output[-8000:], file=sys.stderr)
        raise SystemExit(f"bench_identity: dbt {' '.join(args)} failed")
    results = json.loads((target / "target" / "run_results.json").read_text())
    model_seconds = {
        str(r["unique_id"]).rsplit(".", 1)[-1]: float(r["execution_time"])
        for r in results["results"]
    }
    return Run(seconds=seconds, peak_rss_mb=_peak_rss_line(output), model_seconds=model_seconds)


def graph_counts(warehouse_db: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse_db), read_only=True)
    try:
        queries = {
            "edges": "select count(*) from intermediate.int_identity_edges",
            "identifiers": "select count(*) from intermediate.int_identity_nodes",
            "strong identifiers": "select count(*) from intermediate.int_identity_components",
            "refused": "select count(*) from intermediate.int_identity_refused_identifiers",
            "persons": "select count(*) from intermediate.int_identity_persons",
            "largest person": "select max(n_identifiers) from intermediate.int_identity_persons",
        }
        counts: dict[str, int] = {}
        for name, sql in queries.items():
            row = con.execute(sql).fetchone()
            counts[name] = int(row[0]) if row and row[0] is not None else 0
        return counts
    finally:
        con.close()


def save_state(warehouse_db: Path) -> None:
    con = duckdb.connect(str(warehouse_db))
    try:
        con.execute("create schema if not exists bench")
        for table in IDENTITY_TABLES:
            con.execute(
                f"create or replace table bench.{table} as select * from intermediate.{table}"
            )
    finally:
        con.close()


def differences(warehouse_db: Path, memory_limit: str | None) -> dict[str, int]:
    """Rows in one result and not the other, per identity table (0 everywhere: equal).

    Bounded memory: EXCEPT ALL over tens of millions of rows otherwise takes most of
    the RAM (measured: 19 GB at a million persons); with a limit DuckDB spills to the
    temporary directory next to the warehouse.
    """
    con = duckdb.connect(str(warehouse_db), read_only=True)
    try:
        con.execute(f"set memory_limit = '{memory_limit or '4GB'}'")
        con.execute(f"set temp_directory = '{warehouse_db.parent / 'compare.tmp'}'")
        found: dict[str, int] = {}
        for table in IDENTITY_TABLES:
            columns = "*"
            row = con.execute(
                f"select (select count(*) from (select {columns} from bench.{table} "
                f"except all select {columns} from intermediate.{table})) + "
                f"(select count(*) from (select {columns} from intermediate.{table} "
                f"except all select {columns} from bench.{table}))"
            ).fetchone()
            found[table] = int(row[0]) if row else -1
        return found
    finally:
        con.close()


def report(title: str, run: Run) -> None:
    print(f"\n{title}: {run.seconds:,.1f} s wall, peak RSS {run.peak_rss_mb:,.0f} MB")
    for name in (*IDENTITY_TABLES, "int_identity_junk_identifiers"):
        if name in run.model_seconds:
            print(f"    {name:<36}{run.model_seconds[name]:>9.2f} s")
    total = sum(run.model_seconds.values())
    print(f"    {'models, total':<36}{total:>9.2f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_identity_"))
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse_db = workdir / "warehouse.duckdb"
    for name in ("warehouse.duckdb", "raw.duckdb", "vault.duckdb"):
        (workdir / name).unlink(missing_ok=True)
    key_env = {"CDP_MASTER_KEY": secrets.token_urlsafe(48)}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "CDP_TARGET": "ci",
        "CDP_RAW_DB": str(workdir / "raw.duckdb"),
        "CDP_WAREHOUSE_DB": str(warehouse_db),
        "CDP_VAULT_DB": str(workdir / "vault.duckdb"),
        **key_env,
    }
    dbt_vars = ["--vars", json.dumps({"identity_portable_components": bool(args.portable)})]
    profiles_dir = (
        write_profile(workdir, args.memory_limit) if args.memory_limit else paths.PROJECT_ROOT
    )
    try:
        raw = duckdb.connect(str(workdir / "raw.duckdb"))  # the profile attaches it: empty
        for statement in contract.create_all_sql():
            raw.execute(statement)
        raw.close()

        _log(f"synthesising the staging tables of {args.customers:,} persons in {workdir}")
        started = time.perf_counter()
        rows = synthesise(warehouse_db, args.customers, _junk_keys(key_env), args.threads)
        _log(f"synthesised in {time.perf_counter() - started:,.1f} s: " + _rows(rows))

        _log("loading the junk seed (dbt seed)")
        run_dbt_measured(
            ["seed", "--select", "identity_junk_identifiers"], env, workdir, profiles_dir
        )

        _log("batch 1: dbt run --select intermediate.identity (a full build)")
        first = run_dbt_measured(
            ["run", "--select", "intermediate.identity", *dbt_vars], env, workdir, profiles_dir
        )
        counts = graph_counts(warehouse_db)

        _log("batch 2: synthesising new activity")
        new_rows = second_batch(warehouse_db, args.customers)
        _log("batch 2 rows: " + _rows(new_rows))
        _log("batch 2: dbt run --select intermediate.identity (incremental)")
        second = run_dbt_measured(
            ["run", "--select", "intermediate.identity", *dbt_vars], env, workdir, profiles_dir
        )

        implementation = "portable (semi-naive recursion)" if args.portable else "USING KEY"
        limit = f", DuckDB memory_limit {args.memory_limit}" if args.memory_limit else ""
        print(
            f"\nIdentity resolution benchmark: {args.customers:,} persons, {implementation}{limit}"
        )
        print("  graph after batch 1: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        report("batch 1, full build", first)
        report("batch 2, incremental", second)
        sys.stdout.flush()

        verified: dict[str, int] | None = None
        rebuild: Run | None = None
        if not args.no_verify:
            save_state(warehouse_db)
            _log("verification: the same state with --full-refresh")
            rebuild = run_dbt_measured(
                ["run", "--select", "intermediate.identity", "--full-refresh", *dbt_vars],
                env,
                workdir,
                profiles_dir,
            )
            verified = differences(warehouse_db, args.memory_limit)

        if rebuild is not None and verified is not None:
            report("batch 2, --full-refresh (verification)", rebuild)
            bad = {table: n for table, n in verified.items() if n}
            print(
                "\n  incremental result equals the full refresh: "
                + ("yes, every identity table" if not bad else f"NO: {bad}")
            )
            if bad:
                return 1
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or args.workdir is not None:
            _log(f"files kept in {workdir}")


def _rows(rows: dict[str, int]) -> str:
    return ", ".join(f"{table.removeprefix('stg_')} {n:,}" for table, n in rows.items())


if __name__ == "__main__":
    raise SystemExit(main())
