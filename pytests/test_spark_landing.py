"""What a Spark build loads from the landing zone (cdp.spark_stage.tables_to_load), without Spark.

The purge's kept consent scopes (``audit.consent_scopes``, decision 71) are written only by the
purge, which runs on DuckDB; a landing zone that no purge touched has no such table. A Spark
build then loads it empty, of the shape the purge gives it, so stg_rights__consent_scopes reads
a table on Spark whatever the landing zone holds. The rows themselves go through the same
load as every table: the shared Spark build (test_spark_project.py) loads planted scopes and
compares the ledger with DuckDB's.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cdp import spark_stage
from cdp.purge.scopes import SCOPE_COLUMNS


def _landing(path: Path, with_scopes: bool) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema crm")
        con.execute("create table crm.customers (customer_id varchar, created_at timestamp)")
        if with_scopes:
            con.execute("create schema audit")
            columns = ", ".join(f"{name} {kind}" for name, kind in SCOPE_COLUMNS)
            con.execute(f"create table audit.consent_scopes ({columns}, extra_note varchar)")
    finally:
        con.close()
    return path


def test_a_landing_zone_without_scopes_gets_an_empty_table_of_the_purges_shape(
    tmp_path: Path,
) -> None:
    tables = spark_stage.tables_to_load(_landing(tmp_path / "raw.duckdb", with_scopes=False))
    scopes = tables[("audit", "consent_scopes")]
    assert [name for name, _ in scopes] == [name for name, _ in SCOPE_COLUMNS]
    # every type has an exact Spark type (the load refuses any other)
    assert [spark_stage.spark_type(kind) for _, kind in scopes] == [
        "string" if kind.startswith("VARCHAR") else "timestamp" for _, kind in SCOPE_COLUMNS
    ]
    assert ("crm", "customers") in tables


def test_the_purges_own_table_is_loaded_as_it_is(tmp_path: Path) -> None:
    raw = _landing(tmp_path / "raw.duckdb", with_scopes=True)
    tables = spark_stage.tables_to_load(raw)
    assert (
        tables[("audit", "consent_scopes")]
        == spark_stage.landing_tables(raw)[("audit", "consent_scopes")]
    )
    assert tables[("audit", "consent_scopes")][-1] == ("extra_note", "VARCHAR")
