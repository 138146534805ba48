"""Compare two builds of the warehouse table by table: are they equal row for row?

Used to show that a refactor changed no output (docs/decisions.md, 57): build the same
landing zone with the same key twice (before and after), then

    python scripts/compare_builds.py BEFORE_DIR AFTER_DIR

where each folder holds ``warehouse.duckdb``, ``vault.duckdb`` and optionally a published
``published/marts.duckdb``. Every table and view of each file is compared as a multiset of
rows (``except all`` both ways), by column name (column order is reported, not counted as a
difference). The vault's sealed values are encrypted with a fresh nonce each build, so the
vault is compared without them (pseudonym, type, key version), and so are the few columns
that hold the wall clock of a run (``VOLATILE``). Prints one line per relation
and exits 1 if any relation differs or is missing on one side. A relation whose columns
changed is compared on the columns both sides have, and the added or removed columns are
listed (lines COLUMNS, not counted as a difference: say why in the change that made them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

# Columns whose value differs on every run by design: a fresh nonce per seal; a release's
# id, time and (for the release `cdp erase` publishes, as of now) as_of; when an erasure ran
# (the purge's clock: a request's executed_at and closed_at).
VOLATILE: dict[str, tuple[str, ...]] = {
    "vault_identifiers": ("sealed_value",),
    "vault_customer_names": ("sealed_first_name", "sealed_last_name", "sealed_value"),
    "audit_bi_disclosure_ledger": ("release_id", "released_at", "as_of"),
    "int_rights__request_executions": ("executed_at",),
    "int_rights__request_tracking": ("executed_at", "closed_at"),
    "stg_rights__request_closures": ("closed_at",),
}


def _relations(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, list[str]]:
    rows = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and table_schema not in ('information_schema', 'pg_catalog') "
        "order by table_schema, table_name, ordinal_position",
        [catalog],
    ).fetchall()
    found: dict[str, list[str]] = {}
    for schema, table, column in rows:
        found.setdefault(f"{schema}.{table}", []).append(str(column))
    return found


def compare(left: Path, right: Path) -> list[str]:
    """One line per relation of either file; lines starting with DIFF are differences."""
    con = duckdb.connect()
    con.execute(f"attach '{left}' as l (read_only)")
    con.execute(f"attach '{right}' as r (read_only)")
    lines: list[str] = []
    ours, theirs = _relations(con, "l"), _relations(con, "r")
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            lines.append(f"DIFF {name}: only in {'after' if name in theirs else 'before'}")
            continue
        volatile = VOLATILE.get(name.split(".")[-1], ())
        columns = [c for c in ours[name] if c not in volatile and c in theirs[name]]
        added = [c for c in theirs[name] if c not in ours[name]]
        removed = [c for c in ours[name] if c not in theirs[name]]
        if added or removed:
            # Compared on the columns both sides have; the difference in columns is reported.
            change = "; ".join(
                part
                for part in (
                    f"columns added {added}" if added else "",
                    f"columns removed {removed}" if removed else "",
                )
                if part
            )
            lines.append(f"COLUMNS {name}: {change}")
        listed = ", ".join(f'"{c}"' for c in columns)
        counts = []
        for a, b in (("l", "r"), ("r", "l")):
            row = con.execute(
                f"select count(*) from (select {listed} from {a}.{name} "
                f"except all select {listed} from {b}.{name})"
            ).fetchall()
            counts.append(int(row[0][0]))
        total = con.execute(f"select count(*) from l.{name}").fetchall()[0][0]
        order = "" if ours[name] == theirs[name] else " (column order differs)"
        if counts == [0, 0]:
            lines.append(f"same {name}: {total} rows{order}")
        else:
            lines.append(
                f"DIFF {name}: {counts[0]} rows only before, {counts[1]} rows only after{order}"
            )
    con.close()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="folder of the first build")
    parser.add_argument("after", type=Path, help="folder of the second build")
    args = parser.parse_args(argv)
    failed = False
    for name in ("warehouse.duckdb", "vault.duckdb", "published/marts.duckdb"):
        left, right = args.before / name, args.after / name
        if not left.exists() and not right.exists():
            continue
        if not left.exists() or not right.exists():
            print(f"DIFF {name}: missing on one side")
            failed = True
            continue
        print(f"== {name}")
        for line in compare(left, right):
            print(f"  {line}")
            failed = failed or line.startswith("DIFF")
    print("equal" if not failed else "DIFFERENT")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
