"""DuckDB's JSON reading, for the Spark build: ``cdp_json_valid`` and ``cdp_json_extract_string``.

The staging models decide with DuckDB's ``json_valid`` whether a subject request's details or
a web event's properties are JSON, and read fields with ``json_extract_string``. DuckDB's
reader accepts trailing commas, ``NaN``/``Infinity`` and duplicate keys and refuses text after
the value; Spark's ``try_parse_json`` and ``get_json_object`` disagree on each of these
(docs/portability.md, "The project on Spark"), so a Spark build with them would triage
requests and events differently, silently. On Spark these two functions are registered as
UDFs (:func:`cdp.spark_stage.register_normalisers`; the validity an Arrow UDF) and ask DuckDB itself: an in-memory
connection per Python worker, with no file access and its configuration locked, running one
fixed statement with the value as a parameter. The same engine and version (the pinned
``duckdb``) decides on both sides.
"""

from __future__ import annotations

import threading
from typing import Final

import duckdb
import pyarrow as pa

#: What the DuckDB models compute (macros/cross_db/json.sql): validity, and the text at a path
#: of valid JSON only (DuckDB raises on other text; Spark evaluates a Python UDF on every row).
_VALID_EXPR: Final = "try(json_valid(v))"
#: The name a batch is registered under on the thread's connection, for one statement.
_BATCH: Final = "cdp_json_batch"
_EXTRACT_SQL: Final = (
    "select case when coalesce(try(json_valid($value)), false) "
    "then json_extract_string($value, $path) end"
)

_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB: no file access, configuration locked."""
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(
            ":memory:", config={"enable_external_access": False, "lock_configuration": True}
        )
        _local.con = con
    return con


def json_valid_batch(values: pa.Array) -> pa.Array:
    """DuckDB's ``try(json_valid(value))`` (NULL for NULL) over a whole Arrow batch in one
    statement: the Spark build's ``cdp_json_valid`` (an Arrow UDF,
    :func:`cdp.spark_stage.register_normalisers`).

    A web event's properties are JSON text on every row, mostly distinct, and a Spark UDF runs
    on every row: one statement per value cost about 260 microseconds a row in a Spark worker,
    a batch of thousands costs a few milliseconds (decision 88). The
    batch is an Arrow table registered on this thread's locked connection (registration is
    not a file: no replacement scan reaches Python objects), read back in its row order.
    """
    con = _connection()
    batch = pa.table({"i": pa.array(range(len(values)), pa.int64()), "v": values})
    con.register(_BATCH, batch)
    try:
        answers = con.sql(f"select {_VALID_EXPR} from {_BATCH} order by i").to_arrow_table()
    finally:
        con.unregister(_BATCH)
    return answers.column(0).combine_chunks()


def json_extract_string(value: str | None, path: str | None) -> str | None:
    """DuckDB's ``json_extract_string(value, path)`` for text DuckDB reads as JSON, else NULL."""
    if value is None or path is None:
        return None
    (row,) = _connection().execute(_EXTRACT_SQL, {"value": value, "path": path}).fetchall()
    return None if row[0] is None else str(row[0])
