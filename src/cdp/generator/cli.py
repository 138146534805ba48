"""Command line: ``python scripts/generate_landing.py --help``."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from cdp import paths
from cdp.generator.runner import DEFAULT_CUSTOMERS, GenerationError, Options, generate
from cdp.keys import OWNER_ONLY_UMASK


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _date(text: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: {exc}") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdp generate",
        description=(
            "Write a synthetic landing zone (the raw DuckDB database of "
            "shared/contracts/raw_landing.md) and its ground truth (a separate DuckDB file). "
            "Batch 1 is the initial load; batch N > 1 appends one more day of data "
            "(new and changed records, new events) and needs batches 1..N-1."
        ),
    )
    parser.add_argument(
        "--customers",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help=(
            "new synthetic persons (customers) in this batch; each has one or more CRM "
            f"records. Default: {DEFAULT_CUSTOMERS} for batch 1, 2%% of the existing "
            "persons for later batches"
        ),
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=42, help="random seed (default: 42)"
    )
    parser.add_argument(
        "--reference-date",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help=(
            "batch 1's load date (UTC); history goes back ~3 years from it, batch N is loaded "
            "N-1 days later. Default: today for batch 1, batch 1's date afterwards"
        ),
    )
    parser.add_argument(
        "--batch",
        type=_positive_int,
        default=1,
        metavar="N",
        help="batch number: 1 = initial load, N > 1 appends (default: 1)",
    )
    parser.add_argument(
        "--dirty-rate",
        type=_rate,
        default=0.05,
        metavar="RATE",
        help="fraction of rows made dirty, within [0, 1] (default: 0.05)",
    )
    parser.add_argument(
        "--raw-db",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"raw landing database (default: $CDP_RAW_DB or {paths.raw_db()})",
    )
    parser.add_argument(
        "--truth-db",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"ground-truth database (default: $CDP_TRUTH_DB or {paths.truth_file()})",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (the summary line is still printed)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    """Run the generator; returns the process exit code."""
    args = build_parser().parse_args(argv)
    opts = Options(
        customers=args.customers,
        seed=args.seed,
        reference_date=args.reference_date,
        batch=args.batch,
        dirty_rate=args.dirty_rate,
        raw_db=args.raw_db,
        truth_db=args.truth_db,
        quiet=args.quiet,
    )
    try:
        summary = generate(opts)
    except GenerationError as exc:
        print(f"generate_landing: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("generate_landing: interrupted; the batch was not kept", file=sys.stderr)
        return 130
    print(summary.line())
    return 0
