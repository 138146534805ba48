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
import os
import secrets
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from cdp import paths, spark_stage
from conftest import generate_landing, run_dbt

pytestmark = [pytest.mark.spark, pytest.mark.dbt]

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


def _key_file(folder: Path) -> Path:
    folder.mkdir(mode=0o700)
    key = folder / "master.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    return key


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


def plant_landing(raw_db: Path) -> None:
    """Add the hostile requests (batch ``batch_spark``) and a destruction log, as the purge writes
    it, closing two of them (stg_rights__request_closures reads it) to the landing zone."""
    from cdp.purge.records import LOG_COLUMNS

    loaded, received = dt.datetime(2026, 10, 30, 12), dt.datetime(2026, 10, 20, 9, 30)
    con = duckdb.connect(str(raw_db))
    try:
        requests: list[tuple[str, str, str, str, str | None]] = [
            (r, t, s, "access", "{}") for r, t, s in HOSTILE_SUBJECTS
        ]
        requests += [(r, "customer_id", "C-HOSTILE-1", k, d) for r, k, d in HOSTILE_DETAILS]
        for request_id, id_type, subject, request_type, details in requests:
            con.execute(
                "insert into privacy.subject_requests (request_id, subject_id_type, subject_id, "
                "request_type, jurisdiction, received_at, details, is_verified, _loaded_at, "
                "_batch_id) values (?, ?, ?, ?, 'EU', ?, ?, true, ?, 'batch_spark')",
                [request_id, id_type, subject, request_type, received, details, loaded],
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


def _spark_env(key_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CDP_MASTER_KEY"}
    env.update({"CDP_MASTER_KEY_FILE": str(key_file), "TZ": "UTC"})
    return env


def _spark_stage(
    root: Path, raw_db: Path, key_file: Path, *more: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cdp.spark_stage", "--raw-db", str(raw_db)]
    command += ["--workdir", str(root), "--vars", VARS, *more]
    return subprocess.run(
        command, capture_output=True, text=True, env=_spark_env(key_file), timeout=900, check=False
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    import time

    root = tmp_path_factory.mktemp("spark_project")
    raw_db, key_file = root / "raw.duckdb", _key_file(root / "keys")
    generate_landing(raw_db, root / "truth.duckdb", customers=CUSTOMERS)
    plant_landing(raw_db)
    env = {
        "CDP_MASTER_KEY_FILE": str(key_file),
        "CDP_RAW_DB": str(raw_db),
        "CDP_WAREHOUSE_DB": str(root / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(root / "vault.duckdb"),
        "CDP_EVIDENCE_DIR": str(root / "evidence"),
        "CDP_PUBLISHED_DIR": str(root / "published"),
        "CDP_QUALITY_REPORT_DIR": str(root / "quality"),
    }
    for args in (
        ["seed", "--vars", VARS],
        ["run", "--vars", VARS, "--select", *spark_stage.PORTED_MODELS],
    ):
        result = run_dbt(args, env, root / "duckdb")
        assert result.success, result.output[-4000:]
    started = time.monotonic()
    done = _spark_stage(root / "spark", raw_db, key_file, "--dump", str(root / "dump"))
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])
    return Builds(
        root, raw_db, root / "warehouse.duckdb", root / "dump", key_file, time.monotonic() - started
    )


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
        f"{'vault' if m in spark_stage.VAULT_MODELS else 'staging'}.{m}"
        for m in spark_stage.PORTED_MODELS
    }
    assert dumped == wanted | raw


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
        spark_list = [tuple(r.values()) for r in spark.to_pylist()]
        duck_list = _duckdb_rows(db, relation, columns)
        if table in RANDOM_NONCE:
            spark_list, duck_list = (
                _opened(builds, table, spark_list),
                _opened(builds, table, duck_list),
            )
        spark_rows = _rows(columns, spark_list)
        duck_rows = _rows(columns, duck_list)
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
    bad = _key_file(tmp_path / "keys")
    bad.chmod(0o640)
    done = _spark_stage(tmp_path / "spark", builds.raw_db, bad)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "accessible to group or others" in done.stderr
    warehouse = tmp_path / "spark" / "spark-warehouse"
    assert not warehouse.exists() or not any(warehouse.iterdir())  # nothing loaded, nothing built
