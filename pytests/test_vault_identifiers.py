"""vault_identifiers runs each normaliser once per distinct raw value of each source column.

The normalisers are Python (Arrow UDFs): each call costs microseconds, and at a million
customers the vault holds millions of identifiers. DuckDB pushed the model's not-null
filter into every branch of its union, so each value was normalised for the filter and
again for the output (3x the calls, until the union was made a MATERIALIZED CTE). This
test runs the model's compiled SQL from the session build against the build's own files,
with the real normalisers wrapped to count their input rows (the keyed functions replaced
by key-free stand-ins: no key is needed to count), and bounds the calls per normaliser by
the distinct raw values that can reach it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from cdp import sources
from cdp.normalise import normalise_email, normalise_phone
from cdp.plugin import NORMALISER_FUNCTIONS, PSEUDONYM_FUNCTIONS, SEAL_FUNCTION
from conftest import Workspace

COUNTED = {"email": normalise_email, "phone": normalise_phone}


def _counting(name: str, fn: Callable[..., Any] | None, calls: Counter[str], arity: int) -> Any:
    def apply(*columns: Any) -> Any:
        columns = tuple(
            c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns
        )
        calls[name] += len(columns[0])
        if fn is None:  # a key-free stand-in: the last argument, as text
            return columns[-1].cast(pa.string())
        values = zip(*(c.to_pylist() for c in columns), strict=True)
        return pa.array([fn(*v) for v in values], type=pa.string())

    return {
        1: lambda a: apply(a),
        2: lambda a, b: apply(a, b),
        4: lambda a, b, c, d: apply(a, b, c, d),
    }[arity]


def _register(con: duckdb.DuckDBPyConnection, calls: Counter[str]) -> None:
    def udf(name: str, fn: Any, arity: int) -> None:
        con.create_function(
            name,
            fn,
            [duckdb.sqltype("VARCHAR")] * arity,
            duckdb.sqltype("VARCHAR"),
            type=duckdb.func.PythonUDFType.ARROW,
            null_handling=duckdb.func.FunctionNullHandling.SPECIAL,
        )

    for name, fn in NORMALISER_FUNCTIONS.items():
        udf(name, _counting(name, fn, calls, 1), 1)
    for name in PSEUDONYM_FUNCTIONS.values():
        udf(name, _counting(name, None, calls, 2), 2)
    udf(SEAL_FUNCTION, _counting(SEAL_FUNCTION, None, calls, 4), 4)
    con.execute("create macro cdp_key_version() as 'v1'")


def _reachable(con: duckdb.DuckDBPyConnection, id_type: str) -> int:
    """Distinct raw values that may reach the ``id_type`` normaliser in vault_identifiers:
    its typed columns, and every recipient, subject and rectification (typed per row)."""
    total = 0
    for table in sources.landing_tables():
        columns = [c for c, t in table.identifier_columns if t == id_type]
        columns += [c for c, _ in table.channel_columns]
        columns += [c for c, _ in table.typed_columns]
        for column in columns:
            sql = f'select count(distinct "{column}") from raw.{table.qualified}'
            total += int(con.execute(sql).fetchone()[0])  # type: ignore[index]
    rectifications = "select count(*) from raw.privacy.subject_requests"
    return total + int(con.execute(rectifications).fetchone()[0])  # type: ignore[index]


def test_each_distinct_raw_identifier_is_normalised_once(built: Workspace) -> None:
    compiled = next((built.root / "target" / "vault" / "compiled").rglob("vault_identifiers.sql"))
    calls: Counter[str] = Counter()
    con = duckdb.connect()
    try:
        con.execute(f"attach '{built.raw_db}' as raw (read_only)")
        con.execute(f"attach '{built.warehouse_db}' as warehouse (read_only)")
        _register(con, calls)
        (rows,) = con.execute(f"select count(*) from ({compiled.read_text()})").fetchone() or (0,)
        with duckdb.connect(str(built.vault_db), read_only=True) as vault:
            (built_rows,) = vault.execute("select count(*) from vault_identifiers").fetchone() or (
                0,
            )
        assert rows == built_rows  # the SQL run here is the model the build ran
        for id_type in COUNTED:
            bound = _reachable(con, id_type)
            assert 0 < calls[f"cdp_normalise_{id_type}"] <= bound, (id_type, dict(calls), bound)
    finally:
        con.close()
