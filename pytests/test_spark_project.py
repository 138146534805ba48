"""The same landing zone built on DuckDB and on Spark gives the same relations, row for row.

One small generated landing zone and one key file. DuckDB: the project's privacy stage as
``cdp build`` runs it (seeds, then the models ported to Spark). Spark: ``python -m
cdp.spark_stage`` in a fresh JVM (the JVM reads the key file named in its environment):
the landing zone loaded into Spark tables, the keyed functions registered behind the
lockdown, the same dbt commands on the ``spark_privacy`` target (the vault models on
``spark_vault``, with the vault seal), every relation it made written out as Parquet. Every
one of them is compared with DuckDB's: the same columns and the same rows (pseudonyms and the
identifiers' sealed blobs included; names, sealed with a random nonce, opened), no tolerance;
the raw tables with their types.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from cdp import paths, spark_stage
from spark_build import Builds, key_file, run_spark_stage

pytestmark = [pytest.mark.spark, pytest.mark.dbt]


@pytest.fixture(scope="module")
def builds(spark_builds: Builds) -> Builds:
    """The shared build (conftest ``spark_builds``, pytests/spark_build.py)."""
    return spark_builds


def _value(value: Any) -> Any:
    """A cell as both engines' Python values compare: Spark's UTC-aware timestamps naive, as
    DuckDB's are; arrays and lists as tuples; decimals by value."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list | tuple):
        return tuple(_value(v) for v in value)
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value


#: Vault tables sealed with a random nonce per row (names): compared opened, not as bytes.
#: The identifiers' nonce derives from the row and value, so their blobs are compared as bytes.
RANDOM_NONCE = {"vault_customer_names": ("customer_key", "name_part", "sealed_value")}


def _opened(builds: Builds, table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each row with its sealed value replaced by the plaintext (VaultCipher.unseal, which
    also proves the blob belongs to its row), for a table sealed with random nonces."""
    from cdp.keys import load_master_key
    from cdp.vault import VaultCipher

    cipher = VaultCipher.from_master(load_master_key({"CDP_MASTER_KEY_FILE": str(builds.key_file)}))
    owner, kind, sealed = RANDOM_NONCE[table]
    columns = list(pq.read_table(builds.dump / f"vault.{table}.parquet").column_names)
    at = {name: columns.index(name) for name in (owner, kind, sealed)}
    opened = []
    for row in rows:
        cells = list(row)
        cells[at[sealed]] = cipher.unseal(
            table, row[at[owner]], row[at[kind]], row[at[sealed]], deterministic=False
        )
        opened.append(tuple(cells))
    return opened


#: Columns whose value is an engine's own hash of a set (identity_set_signature: DuckDB's is the
#: count and xor of its 64-bit hash, which Spark cannot compute; Spark's the md5 of the sorted
#: set). What the models use is only which identifiers share a signature, so each signature is
#: compared as the identifiers that hold it: the smallest id_key among its rows.
SET_SIGNATURES = {"link_signature": "id_key"}


def _signatures_as_sets(columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` with each set signature replaced by the smallest id_key of the rows that hold it:
    two engines' signatures agree when they split the identifiers alike (equal sets, equal
    signatures), whatever hash each uses."""
    for signature, key in SET_SIGNATURES.items():
        if signature not in columns:
            continue
        at, key_at = columns.index(signature), columns.index(key)
        holder: dict[Any, Any] = {}
        for row in rows:
            if row[at] is not None:
                holder[row[at]] = min(holder.get(row[at], row[key_at]), row[key_at])
        rows = [
            (*row[:at], None if row[at] is None else ("held by", holder[row[at]]), *row[at + 1 :])
            for row in rows
        ]
    return rows


#: Columns a build stamps with its own run (dbt's invocation id and start time: the disclosure
#: ledger's release): each engine's must hold one value over all rows, compared as "this build's".
PER_BUILD = {"audit_bi_disclosure_ledger": ("release_id", "released_at")}


def _per_build(
    table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """``rows`` with each per-build column (:data:`PER_BUILD`) checked to hold one value and
    replaced by a marker."""
    for column in PER_BUILD.get(table, ()):
        at = columns.index(column)
        assert len({row[at] for row in rows}) == 1, (table, column)
        rows = [(*row[:at], "this build's", *row[at + 1 :]) for row in rows]
    return rows


def _rows(columns: list[str], rows: list[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(_value(v) for v in row) for row in rows)


def _duckdb_rows(db: Path, relation: str, columns: list[str]) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        listed = ", ".join(f'"{c}"' for c in columns)
        return [tuple(r) for r in con.execute(f"select {listed} from {relation}").fetchall()]
    finally:
        con.close()


def _duckdb_columns(db: Path, schema: str, table: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema = ? "
                "and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
        ]
    finally:
        con.close()


#: An incremental model's record of the landing batches it read (``<model>__raw_batches``,
#: decision 65): each engine's checksum is its own hash (decision 91), compared without it.
STATE_SUFFIX = "__raw_batches"


def _duckdb_states(builds: Builds) -> set[str]:
    """The batch records the DuckDB build wrote, named as the Spark dump names them."""
    found = set()
    for db, schema, database in (
        (builds.warehouse_db, "staging", "staging"),
        (builds.root / "vault.duckdb", "main", "vault"),
    ):
        con = duckdb.connect(str(db), read_only=True)
        try:
            found |= {
                f"{database}.{table}"
                for (table,) in con.execute(
                    "select table_name from information_schema.tables where table_schema = ? "
                    "and table_name like ?",
                    [schema, f"%{STATE_SUFFIX}"],
                ).fetchall()
            }
        finally:
            con.close()
    return found


def _dumped(builds: Builds) -> dict[str, Path]:
    return {
        path.name.removesuffix(".parquet"): path for path in sorted(builds.dump.glob("*.parquet"))
    }


def test_spark_builds_every_ported_relation(builds: Builds) -> None:
    dumped = set(_dumped(builds))
    seeds = {p.stem for p in (paths.PROJECT_ROOT / "seeds").glob("*.csv")}
    raw = {
        f"{spark_stage.raw_database(schema)}.{table}"
        for schema, table in spark_stage.landing_tables(builds.raw_db)
    }
    wanted = {f"reference.{s}" for s in seeds} | {
        f"{spark_stage.model_database(m)}.{m}" for m in spark_stage.PORTED_MODELS
    }
    states = _duckdb_states(builds)
    # the vault's two, and the triaged models' whose landing table the purge rewrites in place
    assert {
        "vault.vault_identifiers__raw_batches",
        "staging.stg_shop__orders_triaged__raw_batches",
    } <= states
    assert dumped == wanted | raw | states


def test_every_spark_relation_equals_duckdb_row_for_row(builds: Builds) -> None:
    compared = []
    for name, path in _dumped(builds).items():
        database, table = name.split(".", 1)
        spark = pq.read_table(path)
        columns = spark.column_names
        if database.startswith("raw_"):
            schema = database.removeprefix("raw_")
            db, relation = builds.raw_db, f'"{schema}"."{table}"'
            assert columns == _duckdb_columns(db, schema, table), name
        elif database == "vault":  # DuckDB: the vault file, schema main
            db, relation = builds.root / "vault.duckdb", f'"main"."{table}"'
            assert columns == _duckdb_columns(db, "main", table), name
        else:
            db, relation = builds.warehouse_db, f'"{database}"."{table}"'
            assert columns == _duckdb_columns(db, database, table), name
        if table.endswith(STATE_SUFFIX):
            columns = [c for c in columns if c != "checksum"]
            spark = spark.select(columns)
        spark_list = [tuple(r.values()) for r in spark.to_pylist()]
        duck_list = _duckdb_rows(db, relation, columns)
        if table.endswith(STATE_SUFFIX) and "source_table" in columns:
            # the vault's names a landing table by its source's schema: raw_<schema> on Spark
            at = columns.index("source_table")
            spark_list = [(*r[:at], r[at].removeprefix("raw_"), *r[at + 1 :]) for r in spark_list]
        if table in RANDOM_NONCE:
            spark_list, duck_list = (
                _opened(builds, table, spark_list),
                _opened(builds, table, duck_list),
            )
        spark_list, duck_list = (
            _per_build(table, columns, spark_list),
            _per_build(table, columns, duck_list),
        )
        spark_rows = _rows(columns, _signatures_as_sets(columns, spark_list))
        duck_rows = _rows(columns, _signatures_as_sets(columns, duck_list))
        only_spark, only_duck = spark_rows - duck_rows, duck_rows - spark_rows
        assert not only_spark and not only_duck, (
            f"{name}: {sum(only_spark.values())} rows only on Spark, e.g. {list(only_spark)[:2]}; "
            f"{sum(only_duck.values())} only on DuckDB, e.g. {list(only_duck)[:2]}"
        )
        assert sum(spark_rows.values()) > 0, f"{name} is empty: the comparison would prove nothing"
        compared.append(name)
    # The pseudonyms were compared as values: the staging models hold keyed pseudonyms.
    triaged = pq.read_table(builds.dump / "staging.stg_crm__customers_triaged.parquet")
    keys = [k for k in triaged.column("customer_key").to_pylist() if k]
    assert keys and all(k.startswith("v1_") and len(k) == 67 for k in keys)
    assert len(compared) == len(_dumped(builds))
    assert {"vault.vault_identifiers", "vault.vault_customer_names"} <= set(compared)


def test_raw_types_are_kept(builds: Builds) -> None:
    """Decimals stay decimals, timestamps timestamps, dates dates (no silent double or text)."""
    import pyarrow as pa

    orders = pq.read_table(builds.dump / "raw_shop.orders.parquet").schema
    assert orders.field("total_amount").type == pa.decimal128(12, 2)
    assert pa.types.is_timestamp(orders.field("ordered_at").type)
    customers = pq.read_table(builds.dump / "raw_crm.customers.parquet").schema
    assert customers.field("birth_date").type == pa.date32()
    assert customers.field("is_deleted").type == pa.bool_()
    items = pq.read_table(builds.dump / "raw_shop.order_items.parquet").schema
    assert items.field("quantity").type == pa.int32()


def test_a_failing_registration_fails_the_build(builds: Builds, tmp_path: Path) -> None:
    """A key file the JVM refuses (group-readable): nothing is built, the reason is given."""
    bad = key_file(tmp_path / "keys")
    bad.chmod(0o640)
    done = run_spark_stage(tmp_path / "spark", builds.raw_db, bad)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "accessible to group or others" in done.stderr
    warehouse = tmp_path / "spark" / "spark-warehouse"
    assert not warehouse.exists() or not any(warehouse.iterdir())  # nothing loaded, nothing built


def _spark_rows(builds: Builds, relation: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(builds.dump / f"{relation}.parquet").to_pylist()
    return rows


def test_hostile_identity_graphs_resolve_alike(builds: Builds) -> None:
    """The planted graphs (spark_build.plant_graphs) on Spark; the comparison above holds DuckDB
    to the same rows. The chain of CHAIN_LENGTH customers is one person, which only an iteration
    that runs to its fixpoint finds (its smallest label starts at the far end); the star is one
    person; the shared and the junk e-mail are refused and join no one."""
    from cdp import keys, normalise, pseudonym
    from spark_build import CHAIN_CUSTOMER, CHAIN_LENGTH, STAR_CUSTOMER, STAR_SIZE

    master = keys.load_master_key({"CDP_MASTER_KEY_FILE": str(builds.key_file)})
    identity = keys.pseudonym_key(master, "identity")

    def key_of(customer_id: str) -> str | None:
        value = normalise.normalise_identifier("customer_id", customer_id)
        return pseudonym.pseudonym(identity, master.version, "customer_id", value)

    customer_key = {
        c: key_of(c)
        for c in [*(CHAIN_CUSTOMER.format(i) for i in range(CHAIN_LENGTH)), STAR_CUSTOMER]
    }
    components = _spark_rows(builds, "intermediate.int_identity_components")
    person = {row["id_key"]: row["person_key"] for row in components}
    chain = {person[customer_key[CHAIN_CUSTOMER.format(i)]] for i in range(CHAIN_LENGTH)}
    assert len(chain) == 1
    (chain_person,) = chain
    members = [row for row in components if row["person_key"] == chain_person]
    assert len(members) == 2 * CHAIN_LENGTH
    # the anchor is the earliest identifier: the chain's last customer
    assert {row["anchor_key"] for row in members} == {
        customer_key[CHAIN_CUSTOMER.format(CHAIN_LENGTH - 1)]
    }
    star = [row for row in components if row["person_key"] == person[customer_key[STAR_CUSTOMER]]]
    assert sum(row["id_type"] == "phone" for row in star) == STAR_SIZE
    refused = {
        row["refusal_reason"]: row["n_customers"]
        for row in _spark_rows(builds, "intermediate.int_identity_nodes")
        if row["is_refused"] and row["n_customers"] >= STAR_SIZE
    }
    assert refused.get("linked_to_too_many_customers") == STAR_SIZE
    assert refused.get("junk_value", 0) >= STAR_SIZE
    # it iterated: the log names the rounds the chain took
    log = (builds.spark_workdir / "logs" / "dbt.log").read_text(encoding="utf-8")
    rounds = [int(r) for r in re.findall(r"connected components converged in (\d+) rounds", log)]
    assert rounds and rounds[-1] > 2, rounds


def test_planted_scopes_reach_the_ledger(builds: Builds) -> None:
    """The purge's kept scopes planted in the landing zone (spark_build.plant_scopes) act on
    Spark's ledger as decision 71 says; the comparison above holds DuckDB to the same rows. A
    withdrawal reaches the other person of its scope, a restriction's scope excludes one more
    person, a grant marked ambiguous counts for nobody, an old scope is left out."""
    planted = builds.scopes
    scopes = _spark_rows(builds, "staging.stg_rights__consent_scopes")
    assert {row["scope_kind"] for row in scopes} == {"withdrawal", "restriction", "ambiguous_grant"}
    assert "old-withdrawal" not in {row["event_id"] for row in scopes}  # retention
    events = _spark_rows(builds, "intermediate.int_consent__person_events")
    scoped = [
        row
        for row in events
        if row["consent_event_id"] == planted["withdrawal_id"]
        and row["person_key"] == planted["scoped_person"]
    ]
    assert len(scoped) == 1 and not scoped[0]["is_subject_unambiguous"], scoped
    assert planted["ambiguous_grant_id"] not in {row["consent_event_id"] for row in events}
    restricted = {
        (row["person_key"], row["request_key"])
        for row in _spark_rows(builds, "intermediate.int_consent__person_restrictions")
    }
    assert (planted["restricted_person"], planted["restriction_key"]) in restricted
    # the planted rectification reaches the contacts
    contacts = _spark_rows(builds, "intermediate.int_consent__person_contacts")
    assert any(row["link_rule"] == "rectification" for row in contacts)


def _working_day(day: dt.date, calendar: dict[dt.date, str]) -> bool:
    """The production calendar's rule, read from the holiday seed here (not from the model)."""
    kind = calendar.get(day)
    return kind == "working_weekend" or (day.weekday() < 5 and kind is None)


def _due_date(received: dt.date, count: int, unit: str, calendar: dict[dt.date, str]) -> dt.date:
    """A deadline as REQUIREMENTS.md counts it, computed in Python: working days of the Russian
    production calendar from the next day, calendar days, or months with the day clamped."""
    import calendar as months

    if unit == "calendar_days":
        return received + dt.timedelta(days=count)
    if unit == "months":
        month = received.month - 1 + count
        year, month = received.year + month // 12, month % 12 + 1
        return dt.date(year, month, min(received.day, months.monthrange(year, month)[1]))
    assert unit == "working_days", unit
    day, left = received, count
    while left:
        day += dt.timedelta(days=1)
        left -= _working_day(day, calendar)
    return day


def test_planted_requests_are_tracked_and_executed(builds: Builds) -> None:
    """The rights requests planted in the landing zone (spark_build.RIGHTS_REQUESTS) on Spark, the
    comparison above holding DuckDB to the same rows: each due date equals the one computed here
    from the seeds (working days across the 4 November holiday, a month clamped to the 30th,
    calendar days); the erasure the purge logged is closed by it, the other is awaiting the purge
    and overdue, both persons are on the erasure list and excluded; the late objection is
    executed by the build and closed late; the old access request is overdue, the recent one not."""
    import csv

    from spark_build import AS_OF, PURGED_ERASURE, RIGHTS_REQUESTS

    seeds = paths.PROJECT_ROOT / "seeds"
    with (seeds / "ru_public_holidays.csv").open(encoding="utf-8") as f:
        calendar = {
            dt.date.fromisoformat(r["calendar_date"]): r["day_type"] for r in csv.DictReader(f)
        }
    with (seeds / "rights_deadlines.csv").open(encoding="utf-8") as f:
        deadlines = {
            (r["jurisdiction"], r["request_type"]): (int(r["deadline_count"]), r["deadline_unit"])
            for r in csv.DictReader(f)
        }
    as_of = dt.datetime.fromisoformat(AS_OF).date()
    tracking = {
        r["request_id"]: r for r in _spark_rows(builds, "intermediate.int_rights__request_tracking")
    }
    for request_id, _, request_type, _, jurisdiction, received in RIGHTS_REQUESTS:
        row = tracking[request_id]
        due = _due_date(received.date(), *deadlines[(jurisdiction, request_type)], calendar)
        assert row["due_date"] == due, (request_id, row["due_date"], due)
        assert row["is_overdue"] == (row["is_open"] and due < as_of), row
        assert row["candidate_person_count"] == 1 and row["person_key"], row
    purged, awaiting, old_access, objection, new_access = (tracking[r[0]] for r in RIGHTS_REQUESTS)
    assert (purged["request_status"], purged["closed_by"]) == ("closed", "purge_erasure")
    assert _value(purged["closed_at"]) == PURGED_ERASURE[1]
    assert awaiting["request_status"] == "awaiting_purge" and awaiting["is_overdue"]
    assert old_access["request_status"] == "awaiting_export" and old_access["is_overdue"]
    assert new_access["is_open"] and not new_access["is_overdue"]
    assert new_access["due_date"] > dt.date(2026, 11, 4) > new_access["received_at"].date()
    assert (objection["request_status"], objection["closed_by"]) == ("closed", "build")
    assert objection["due_date"] == dt.date(2026, 9, 30) and objection["is_closed_late"]
    executed = {
        r["request_id"] for r in _spark_rows(builds, "intermediate.int_rights__request_executions")
    }
    assert {purged["request_id"], awaiting["request_id"], objection["request_id"]} <= executed
    assert not {old_access["request_id"], new_access["request_id"]} & executed
    erased = {
        r["request_id"]: r["person_key"]
        for r in _spark_rows(builds, "intermediate.int_rights__erased_persons")
    }
    assert erased.get(purged["request_id"]) == purged["person_key"]
    assert erased.get(awaiting["request_id"]) == awaiting["person_key"]
    excluded = {
        r["person_key"]: r for r in _spark_rows(builds, "intermediate.int_rights__excluded_persons")
    }
    for person in (purged["person_key"], awaiting["person_key"]):
        assert excluded[person]["is_to_be_erased"] and excluded[person]["has_erasure_request"]
    assert any(r["has_restriction_request"] for r in excluded.values())  # LEDGER_REQUESTS


def test_the_profile_honours_consent_and_exclusions(builds: Builds) -> None:
    """On Spark, the profile holds only persons who may be profiled, none excluded, one row
    each; its events only of those persons and within as_of (the comparison holds DuckDB to the
    same rows)."""
    profile = _spark_rows(builds, "marts.dim_customer_profile")
    events = _spark_rows(builds, "marts.fct_profile_events")
    assert profile and events
    persons = [r["person_key"] for r in profile]
    assert len(persons) == len(set(persons))
    profiled = {
        r["person_key"] for r in _spark_rows(builds, "intermediate.int_consent__profiled_persons")
    }
    excluded = {
        r["person_key"] for r in _spark_rows(builds, "intermediate.int_rights__excluded_persons")
    }
    assert set(persons) <= profiled and not set(persons) & excluded
    assert {r["person_key"] for r in events} <= profiled
    assert all(r["permitted_purposes"] == sorted(r["permitted_purposes"]) for r in profile)
    assert any(r["categories"] for r in profile) and any(r["permitted_purposes"] for r in profile)


def test_contracted_models_are_checked_on_spark(builds: Builds) -> None:
    """Every ported model whose contract dbt enforces on DuckDB is checked on Spark by the
    post-hook enforce_contract (dbt-spark cannot read the DuckDB type names and enforces no
    not_null on Parquet: macros/spark/contract.sql), and the Spark build ran it."""
    import json

    duck = json.loads((builds.root / "duckdb" / "target" / "manifest.json").read_text())["nodes"]
    spark = json.loads((builds.spark_workdir / "target" / "manifest.json").read_text())["nodes"]
    contracted = {
        m
        for m in spark_stage.PORTED_MODELS
        if duck[f"model.cdp.{m}"]["config"]["contract"]["enforced"]
    }
    assert {*spark_stage.PROFILE_MODELS, *spark_stage.AUDIENCE_MODELS} <= contracted
    for model in contracted:
        hooks = [h["sql"] for h in spark[f"model.cdp.{model}"]["config"]["post-hook"]]
        assert "{{ enforce_contract() }}" in hooks, model
    # the check ran: its count of NULLs in each not_null column is in dbt's log
    log = (builds.spark_workdir / "logs" / "dbt.log").read_text(encoding="utf-8")
    for model in contracted:
        columns = spark[f"model.cdp.{model}"]["columns"].values()
        for column in columns:
            if any(c["type"] == "not_null" for c in column["constraints"]):
                assert f"count_if({column['name']} is null)" in log, (model, column["name"])
    results = json.loads((builds.spark_workdir / "target" / "run_results.json").read_text())
    ran = {r["unique_id"].split(".")[-1]: r["status"] for r in results["results"]}
    assert all(ran.get(m) == "success" for m in contracted), ran


def test_the_audiences_honour_consent_and_channels(builds: Builds) -> None:
    """On Spark, rpt_marketing_audiences is exactly what the seeds and the ledger say, computed
    here from the Spark ledger's tables and the seed files: one row per permitted, active person,
    marketing purpose and own contact of a type the purpose's channels send to (seeds purposes,
    channels); the channel audiences are its slices (the comparison holds DuckDB to the same
    rows). The landing zone has what this needs: persons in one purpose's audience only, and
    withdrawn consents, which keep their persons out."""
    import csv

    seeds = paths.PROJECT_ROOT / "seeds"
    with (seeds / "channels.csv").open(encoding="utf-8") as f:
        recipient = {r["channel"]: r["recipient_type"] for r in csv.DictReader(f)}
    with (seeds / "purposes.csv").open(encoding="utf-8") as f:
        sends_to = {
            r["purpose_code"]: {recipient[c.strip()] for c in r["message_channels"].split(";")}
            for r in csv.DictReader(f)
            if r["message_channels"]
        }
    purposes = _spark_rows(builds, "intermediate.int_consent__person_purposes")
    active = {
        r["person_key"]
        for r in _spark_rows(builds, "intermediate.int_consent__person_activity")
        if r["is_active"]
    }
    contacts = _spark_rows(builds, "intermediate.int_consent__person_contacts")
    expected = {
        (p["purpose_code"], p["person_key"], c["contact_id_type"], c["contact_key"])
        for p in purposes
        if p["is_permitted"] and p["person_key"] in active and p["purpose_code"] in sends_to
        for c in contacts
        if c["person_key"] == p["person_key"]
        and c["contact_id_type"] in sends_to[p["purpose_code"]]
    }
    audience = _spark_rows(builds, "marts.rpt_marketing_audiences")
    got = [
        (r["purpose_code"], r["person_key"], r["contact_id_type"], r["contact_key"])
        for r in audience
    ]
    assert len(got) == len(set(got)) and set(got) == expected, (len(got), len(expected))
    assert {r[0] for r in got} == set(sends_to)  # every purpose with channels has an audience
    for purpose, model in (
        ("email_marketing", "rpt_email_audience"),
        ("push_marketing", "rpt_push_audience"),
        ("sms_marketing", "rpt_sms_audience"),
    ):
        sliced = Counter(
            tuple(_value(v) for k, v in r.items() if k != "purpose_code")
            for r in audience
            if r["purpose_code"] == purpose
        )
        rows = Counter(
            tuple(_value(v) for v in r.values()) for r in _spark_rows(builds, f"marts.{model}")
        )
        assert rows == sliced and rows, model
    # the cases the comparison needs: persons in one purpose's audience only, and in several;
    # withdrawn consents of active persons with a contact the purpose sends to, left out
    per_person = Counter(r[1] for r in set(got))
    assert 1 in per_person.values() and max(per_person.values()) > 1
    reachable = {(c["person_key"], c["contact_id_type"]) for c in contacts}
    withdrawn = {
        (p["purpose_code"], p["person_key"])
        for p in purposes
        if p["last_withdrawn_at"] is not None
        and not p["is_permitted"]
        and p["purpose_code"] in sends_to
        and p["person_key"] in active
        and any((p["person_key"], t) in reachable for t in sends_to[p["purpose_code"]])
    }
    assert withdrawn and not withdrawn & {(r[0], r[1]) for r in got}


def test_the_audit_views_account_for_every_raw_row(builds: Builds) -> None:
    """On Spark, audit_row_accounting counts every raw row of every landing table with a
    staging model once (raw = kept + duplicate + superseded + quarantined, each table's raw rows
    those of its Spark raw table), names each table as the landing zone does, and
    audit_quarantine lists each quarantined row, the planted ones (spark_build.
    QUARANTINED_REQUESTS, QUARANTINED_CUSTOMER) with their reasons (the comparison holds DuckDB
    to the same rows)."""
    accounting = _spark_rows(builds, "audit.audit_row_accounting")
    quarantine = _spark_rows(builds, "audit.audit_quarantine")
    raw: Counter[str] = Counter()
    for row in accounting:
        counted = ("kept_rows", "duplicate_rows", "superseded_rows", "quarantined_rows")
        assert row["raw_rows"] == sum(row[c] for c in counted), row
        raw[row["source_table"]] += row["raw_rows"]
    triaged = {
        p.name.removeprefix("staging.stg_").removesuffix("_triaged.parquet").replace("__", ".")
        for p in builds.dump.glob("staging.stg_*_triaged.parquet")
    }
    assert set(raw) == triaged and len(triaged) == 7
    for table, rows in raw.items():
        assert pq.read_metadata(builds.dump / f"raw_{table}.parquet").num_rows == rows, table
    listed = Counter((r["source_table"], r["_batch_id"]) for r in quarantine)
    assert listed == Counter(
        {
            (r["source_table"], r["_batch_id"]): r["quarantined_rows"]
            for r in accounting
            if r["quarantined_rows"]
        }
    )
    assert {table for table, _ in listed} == triaged  # a quarantined row in every landing table
    planted = {
        (r["source_table"], r["reject_reason"])
        for r in quarantine
        if r["_batch_id"] == "batch_quarantine"
    }
    assert planted == {
        ("crm.customers", "missing_key"),
        *(
            ("privacy.subject_requests", reason)
            for reason in (
                "missing_key",
                "unknown_request_type",
                "unknown_jurisdiction",
                "missing_timestamp",
            )
        ),
    }
    located = [r for r in quarantine if r["source_table"] == "privacy.subject_requests"]
    assert sum(r["record_locator"] is not None for r in located) == 3  # the one without a key: none


def test_bi_marts_suppress_small_cells_and_publish_the_rest(builds: Builds) -> None:
    """The k-anonymity rules on Spark over the shared landing zone, which holds cells on both
    sides of k (the generated data's small cells, spark_build.plant_bi_people's cohort and
    campaign week): every sales and campaign cell whose true number of people is below k is
    suppressed, and at least one of k or more is published, at k or more after the perturbation;
    the planted cohort is published. The comparison above holds DuckDB to the same rows, so both
    engines suppress the same cells."""
    from spark_build import BI_MESSAGE_AT, BI_ORDER_MONTHS, BI_PEOPLE

    k = 10  # var k_anonymity's default, which both builds use
    events = _spark_rows(builds, "intermediate.int_bi__analytics_events")
    sales: dict[tuple[Any, ...], set[str]] = {}
    campaign: dict[tuple[Any, ...], set[str]] = {}
    for row in events:
        day = _value(row["event_at"]).date()
        if row["event_source"] == "order" and row["event_type"] not in ("cancelled", "returned"):
            sales.setdefault((day.replace(day=1), row["region"]), set()).add(row["person_key"])
        if row["event_source"] == "message":
            monday = day - dt.timedelta(days=day.weekday())
            campaign.setdefault((row["channel"], monday), set()).add(row["person_key"])
    for mart, cells, key, count in (
        ("bi_sales_by_region_month", sales, ("order_month", "region"), "customer_count"),
        ("bi_campaign_performance", campaign, ("channel", "campaign_week"), "recipient_count"),
    ):
        published = {
            tuple(row[c] for c in key): row
            for row in _spark_rows(builds, f"bi.{mart}")
            if not row.get("is_total")
        }
        assert set(published) == set(cells), mart
        small = [cell for cell, people in cells.items() if len(people) < k]
        assert small and all(published[cell]["is_suppressed"] for cell in small), mart
        assert all(published[cell][count] is None for cell in small), mart
        shown = [
            cell
            for cell, people in cells.items()
            if len(people) >= k and not published[cell]["is_suppressed"]
        ]
        assert shown and all(published[cell][count] >= k for cell in shown), mart
    week = BI_MESSAGE_AT.date() - dt.timedelta(days=BI_MESSAGE_AT.weekday())
    assert len(campaign[("email", week)]) >= BI_PEOPLE
    cohorts = _spark_rows(builds, "bi.bi_cohort_retention")
    planted = {
        row["months_since_first"]: row
        for row in cohorts
        if row["cohort_month"] == BI_ORDER_MONTHS[0].date().replace(day=1)
    }
    assert {0, 1} <= set(planted), cohorts
    assert all(not row["is_suppressed"] and row["active_customers"] >= k for row in cohorts)
