"""``cdp purge`` (also ``python -m cdp.purge``, ``scripts/purge.py``): the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cdp import paths
from cdp.as_of import AsOfError, parse_as_of
from cdp.keys import OWNER_ONLY_UMASK
from cdp.purge.core import LOG_TABLE, PurgeError
from cdp.purge.records import PurgeResult
from cdp.purge.run import purge


def summary(result: PurgeResult) -> str:
    lines = [
        f"{'dry run: would destroy' if result.dry_run else 'destroyed'} as of "
        f"{result.as_of.isoformat(sep=' ')} (run {result.run_id})",
        f"{'raw table':<28}{'data category':<24}{'reason':<26}{'method':<13}{'rows':>9}",
    ]
    for (table, category, reason, method), rows in sorted(result.totals().items()):
        lines.append(f"{table:<28}{category:<24}{reason:<26}{method:<13}{rows:>9}")
    lines.append(
        f"total: {result.rows('delete_rows')} rows deleted, {result.rows('null_fields')} rows "
        f"depersonalised, {result.rows('keep_rows')} consent scope rows kept as proof, "
        f"{len(result.records)} destruction records"
        + ("" if result.dry_run else f" written to {LOG_TABLE}")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="cdp purge",
        description=(
            "Destroy personal data past its retention period (seeds/data_categories.csv) in the "
            "raw zone, and write a destruction record per batch into audit.destruction_log in the "
            "same file. Needs the master key (CDP_MASTER_KEY or CDP_MASTER_KEY_FILE) and a built "
            "warehouse (identity map and activity). Run it after `dbt build`, then build again."
        ),
    )
    parser.add_argument(
        "--as-of",
        metavar="ISO",
        help="judge retention as of this UTC date or timestamp (default: now)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be destroyed; write nothing"
    )
    parser.add_argument(
        "--raw-db",
        type=Path,
        default=None,
        help="landing zone (default: $CDP_RAW_DB or data/raw.duckdb)",
    )
    parser.add_argument(
        "--warehouse-db",
        type=Path,
        default=None,
        help="built warehouse, opened read-only (default: $CDP_WAREHOUSE_DB or data/warehouse.duckdb)",
    )
    parser.add_argument(
        "--vault-db",
        type=Path,
        default=None,
        help="the vault, where an erased person's entries are deleted (default: $CDP_VAULT_DB or data/vault.duckdb)",
    )
    parser.add_argument(
        "--operator", default=None, help="who runs the purge, for the record (default: the OS user)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the run's records as JSON to this file",
    )
    args = parser.parse_args(argv)
    try:
        result = purge(
            raw_db=args.raw_db or paths.raw_db(),
            warehouse_db=args.warehouse_db or paths.warehouse_db(),
            vault_db=args.vault_db or paths.vault_db(),
            as_of=parse_as_of(args.as_of),
            dry_run=args.dry_run,
            operator=args.operator,
        )
    except (PurgeError, AsOfError) as exc:
        print(f"purge: error: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    if args.report is not None:
        args.report.write_text(result.to_json() + "\n", encoding="utf-8")
        print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
