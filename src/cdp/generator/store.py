"""Opening the raw and truth databases, checking batches, bulk inserts."""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cdp.contract import TABLES, create_all_sql, full_columns
from cdp.generator.model import Rows
from cdp.generator.truth import TRUTH_TABLES, arrow_schema, create_truth_sql
from cdp.generator.vec import const, timestamps


class GenerationError(Exception):
    """Bad input or a state of the databases the generator refuses to touch."""


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are owner-only (the databases hold personal data)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def prepare_path(path: Path, what: str) -> Path:
    """Create the folder if missing; fail clearly if the file cannot be written."""
    path = path.expanduser().resolve()
    if path.exists() and path.is_dir():
        raise GenerationError(f"{what} path {path} is a directory, expected a database file")
    try:
        with private_umask():
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenerationError(
            f"cannot create the folder for the {what} ({path.parent}): {exc}"
        ) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise GenerationError(f"{what} folder {path.parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise GenerationError(f"{what} file {path} is not writable")
    return path


def connect(path: Path, what: str, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    try:
        with private_umask():
            con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise GenerationError(f"cannot open the {what} {path}: {exc}") from exc
    restrict(path)
    # bounded memory: DuckDB evicts written blocks / spills instead of caching a whole batch
    con.execute(f"set memory_limit = '{memory_limit}'")
    # one DuckDB thread per connection: appends are single-threaded anyway, and the two
    # writer threads plus the generator already keep the cores busy (idle workers cost CPU)
    con.execute("set threads = 1")
    return con


def restrict(path: Path) -> None:
    """Owner read/write only, for the database and any side file DuckDB keeps."""
    for p in (path, path.with_name(path.name + ".wal")):
        if p.exists():
            p.chmod(stat.S_IRUSR | stat.S_IWUSR)


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database()"
    ).fetchall()
    return {(str(s), str(t)) for s, t in rows}


def check_raw_contract(con: duckdb.DuckDBPyConnection) -> None:
    """Existing raw tables must have exactly the contract's columns (else refuse to append)."""
    existing = _existing_tables(con)
    for schema, tables in TABLES.items():
        for table in tables:
            if (schema, table) not in existing:
                continue
            got = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() and table_schema = ? and table_name = ? "
                "order by ordinal_position",
                [schema, table],
            ).fetchall()
            want = [(c, t) for c, t in full_columns(schema, table)]
            if [(str(c), str(t)) for c, t in got] != want:
                raise GenerationError(
                    f"raw table {schema}.{table} does not match the landing contract; "
                    "refusing to append to it"
                )


def raw_batches(con: duckdb.DuckDBPyConnection) -> set[str]:
    existing = _existing_tables(con)
    parts = [
        f"select distinct _batch_id from {s}.{t}"
        for s, tables in TABLES.items()
        for t in tables
        if (s, t) in existing
    ]
    if not parts:
        return set()
    return {str(r[0]) for r in con.execute(" union ".join(parts)).fetchall()}


def create_raw(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in create_all_sql():
        con.execute(stmt)


def create_truth(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in create_truth_sql():
        con.execute(stmt)


RAW_SCHEMAS: dict[tuple[str, str], Any] = {
    (s, t): arrow_schema(full_columns(s, t)) for s, tables in TABLES.items() for t in tables
}
TRUTH_SCHEMAS: dict[str, Any] = {name: arrow_schema(cols) for name, cols in TRUTH_TABLES.items()}


def insert_arrow(con: duckdb.DuckDBPyConnection, target: str, table: pa.Table) -> None:
    """Bulk insert (the arrow table's columns are in the target's order)."""
    if table.num_rows == 0:
        return
    con.register("_generator_chunk", table)
    try:
        con.execute(f"insert into {target} select * from _generator_chunk")
    finally:
        con.unregister("_generator_chunk")


def raw_table(rows: Rows, batch_id: str, loaded_at_us: int) -> pa.Table:
    """Contract column order and types, plus the loader columns."""
    schema = RAW_SCHEMAS[(rows.schema, rows.table)]
    n = len(rows)
    arrays = []
    for f in schema:
        if f.name == "_loaded_at":
            arrays.append(timestamps(np.full(n, loaded_at_us, dtype=np.int64)))
        elif f.name == "_batch_id":
            arrays.append(const(batch_id, n))
        else:
            col = rows.cols[f.name]
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def truth_table(name: str, tables: list[pa.Table]) -> pa.Table:
    schema = TRUTH_SCHEMAS[name]
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


ROW_GROUP = 122_880  # DuckDB's row group size


class Sink:
    """A writer thread owning one connection: inserts run while the next chunk is generated.

    DuckDB inserts are mostly single-threaded and release the GIL, so with one
    sink per database the raw writes, truth writes and generation overlap.
    Small inserts are buffered per table until they fill whole row groups
    (smaller appends go through the WAL and get written twice). Reads on the
    connection must call ``flush()`` first.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, name: str, depth: int = 6, rows: int = 2 * ROW_GROUP
    ) -> None:
        self.con = con
        self._rows = rows
        self._buffers: dict[str, list[pa.Table]] = {}
        self._buffered: dict[str, int] = {}
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"cdp-sink-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    kind, payload = item
                    if kind == "insert":
                        target, table = payload
                        insert_arrow(self.con, target, table)
                    else:
                        self.con.execute(payload)
            except BaseException as exc:  # re-raised in the generating thread
                self._error = exc
            finally:
                item = None
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def insert(self, target: str, table: pa.Table) -> None:
        self._check()
        if table.num_rows == 0:
            return
        self._buffers.setdefault(target, []).append(table)
        self._buffered[target] = self._buffered.get(target, 0) + table.num_rows
        if self._buffered[target] >= self._rows:
            self._send(target)

    def _send(self, target: str) -> None:
        tables = self._buffers.pop(target, [])
        self._buffered.pop(target, None)
        if tables:
            self._queue.put(("insert", (target, pa.concat_tables(tables))))

    def execute(self, sql: str) -> None:
        """Queue a statement (buffered rows not yet sent stay buffered)."""
        self._check()
        self._queue.put(("sql", sql))

    def flush(self) -> None:
        """Send every buffered row, wait until written; raise a writer error here."""
        for target in list(self._buffers):
            self._send(target)
        self._queue.join()
        self._check()

    def discard(self) -> None:
        """Drop buffered rows and wait for the writer (after a failure)."""
        self._buffers.clear()
        self._buffered.clear()
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
