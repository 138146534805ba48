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
        f"{spark_stage.model_database(m)}.{m}" for m in spark_stage.PORTED_MODELS
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
