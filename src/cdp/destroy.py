"""Physical destruction: database files rewritten, old files overwritten before they go.

A DuckDB ``DELETE`` (or ``UPDATE``) marks rows dead; their bytes stay in the
file's freed blocks until DuckDB happens to reuse them, and ``CHECKPOINT`` or
``VACUUM`` does not change that. A file that held destroyed data is therefore
rewritten (decision 47):

1. the file is checkpointed, so its write-ahead log is folded in;
2. every schema, table, view, sequence and macro is copied into a new file
   beside it (``COPY FROM DATABASE``), which holds only live rows;
3. every table's row count is compared between the two (nothing may be lost);
4. the new file is flushed to disk (fsync) and renamed onto the old name
   (``os.replace``, atomic on POSIX), and the folder is flushed;
5. the old file, still open, is overwritten with zeros, flushed and closed:
   its inode, unlinked by the rename, is released with nothing in it; a
   leftover ``.wal`` is overwritten and removed the same way.

What this does not reach is below the file system: blocks a journaling or
copy-on-write file system, an SSD's wear levelling or a snapshot kept
elsewhere. Backups are the operator's: docs/decisions.md (decision 47) says
what to do with them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

CHUNK = 1 << 20


class DestroyError(RuntimeError):
    """A file could not be rewritten; the original is left as it was."""


@dataclass(frozen=True)
class Rewritten:
    path: Path
    bytes_before: int
    bytes_after: int
    tables: int
    rows: int


def fsync_path(path: Path) -> None:
    """Flush a file or a folder (a rename is durable once its folder is flushed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _overwrite(fd: int) -> None:
    """Overwrite an open file with zeros over its whole length, and flush it."""
    size = os.fstat(fd).st_size
    zeros = bytes(CHUNK)
    os.lseek(fd, 0, os.SEEK_SET)
    written = 0
    while written < size:
        written += os.write(fd, zeros[: min(CHUNK, size - written)])
    os.fsync(fd)


def shred(path: Path) -> bool:
    """Overwrite a file with zeros, flush it and remove it; False when there was none."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        _overwrite(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_path(path.parent)
    return True


def shred_tree(folder: Path) -> int:
    """Shred every file under a folder (symlinks removed, not followed), then the folders."""
    count = 0
    if folder.is_symlink():
        folder.unlink()
        return 0
    if not folder.exists():
        return 0
    for item in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if item.is_symlink():
            item.unlink()
        elif item.is_file():
            count += shred(item)
        elif item.is_dir():
            item.rmdir()
    folder.rmdir()
    return count


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_counts(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[tuple[str, str], int]:
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ? "
        "and not temporary order by all",
        [catalog],
    ).fetchall()
    counts: dict[tuple[str, str], int] = {}
    for schema, table in tables:
        row = con.execute(
            f"select count(*) from {_quote(catalog)}.{_quote(schema)}.{_quote(table)}"
        ).fetchone()
        counts[(str(schema), str(table))] = int(row[0]) if row else 0
    return counts


@contextlib.contextmanager
def _open_fd(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR)
    try:
        yield fd
    finally:
        os.close(fd)


def rewrite_database(path: Path) -> Rewritten | None:
    """Rewrite a DuckDB file so that no freed block of it survives (see the module doc).

    None when there is no such file. Raises :class:`DestroyError`, leaving the
    original in place, if the copy fails or loses a row.
    """
    if not path.exists():
        return None
    sql_path = str(path).replace("'", "''")
    try:
        con = duckdb.connect(str(path))
        try:
            con.execute("checkpoint")
        finally:
            con.close()
    except duckdb.Error as exc:
        raise DestroyError(
            f"cannot open {path} to rewrite it ({str(exc).splitlines()[0]}); "
            "no build or tool may hold it meanwhile"
        ) from None
    before = path.stat().st_size
    mode = path.stat().st_mode & 0o777
    temp = path.with_name(f".{path.name}.rewrite-{uuid.uuid4().hex[:12]}")
    # The old file keeps its own catalog name, so views that name it still bind.
    old, new = path.stem, "cdp_rewrite_new"
    sql_temp = str(temp).replace("'", "''")
    try:
        con = duckdb.connect()
        try:
            con.execute(f"attach '{sql_path}' as {_quote(old)} (read_only)")
            con.execute(f"attach '{sql_temp}' as {new}")
            con.execute(f"copy from database {_quote(old)} to {new}")
            expected = _table_counts(con, old)
            copied = _table_counts(con, new)
            if copied != expected:
                lost = sorted(k for k in expected if copied.get(k) != expected[k])
                raise DestroyError(
                    f"the rewrite of {path} did not copy every row of "
                    f"{', '.join('.'.join(k) for k in lost[:5])}; the original is unchanged"
                )
            con.execute(f"detach {new}")
            con.execute(f"detach {_quote(old)}")
        finally:
            con.close()
    except duckdb.Error as exc:
        shred(temp)
        raise DestroyError(
            f"cannot rewrite {path} ({str(exc).splitlines()[0]}); the original is unchanged"
        ) from None
    except BaseException:
        shred(temp)
        raise
    with _open_fd(temp) as fd:
        os.fsync(fd)
    os.chmod(temp, mode)
    with _open_fd(path) as old_fd:
        os.replace(temp, path)
        fsync_path(path.parent)
        _overwrite(old_fd)
    shred(path.with_name(path.name + ".wal"))
    return Rewritten(
        path=path,
        bytes_before=before,
        bytes_after=path.stat().st_size,
        tables=len(expected),
        rows=sum(expected.values()),
    )
