#!/usr/bin/env python3
"""Pairwise accuracy of identity resolution against the generator's ground truth.

Every pair of source records (by default CRM customer records and orders) is a
same-person decision: the warehouse says "same" when both records resolve to
one person key (``intermediate.int_identity_records_resolved``); the truth
file says "same" when the generator made both for one synthetic person.

    precision = correct "same" decisions / all "same" decisions
    recall    = correct "same" decisions / all truly-same pairs

Records the warehouse does not hold (quarantined raw rows) are not scored and
are counted apart; records it holds but could not resolve (every identifier
refused) count as their own singletons.

CRM records are matched to the truth by pseudonymising the truth's customer
ids in Python, so the master key must be in the environment exactly as for
the build (``CDP_MASTER_KEY`` or ``CDP_MASTER_KEY_FILE``, and
``CDP_KEY_VERSION``). The key is never printed.

Usage: ``python scripts/identity_accuracy.py --help``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

try:
    from cdp import keys, normalise, paths, pseudonym
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cdp import keys, normalise, paths, pseudonym

GOAL_PRECISION: Final = 0.999
GOAL_RECALL: Final = 0.98


@dataclass(frozen=True)
class RecordKind:
    """A kind of source record: where the truth and the warehouse keep it."""

    truth_schema: str
    truth_table: str
    source_model: str
    pseudonymised_as: str  # the warehouse holds the key's pseudonym with this id type
    # A personal identifier is normalised as such; a raw source id (decision 50) is trimmed.
    is_identifier: bool = False


KINDS: Final[dict[str, RecordKind]] = {
    "crm": RecordKind("crm", "customers", "stg_crm__customers", "customer_id", is_identifier=True),
    "orders": RecordKind("shop", "orders", "stg_shop__orders", "order_id"),
    "consent": RecordKind(
        "privacy", "consent_events", "stg_privacy__consent_events", "consent_event_id"
    ),
    "requests": RecordKind(
        "privacy", "subject_requests", "stg_privacy__subject_requests", "request_id"
    ),
}
DEFAULT_KINDS: Final = ("crm", "orders")


@dataclass(frozen=True)
class Counts:
    """Pair counts of one slice (all pairs, or pairs of two record kinds)."""

    predicted: int
    true: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.true if self.true else 1.0


@dataclass(frozen=True)
class Report:
    records: dict[str, tuple[int, int, int]]  # kind -> (scored, in truth, unresolved)
    overall: Counts
    by_kind_pair: dict[tuple[str, str], Counts]
    true_persons: int
    predicted_persons: int
    over_merged_persons: int
    records_in_over_merged: int
    split_persons: int

    @property
    def goal_met(self) -> bool:
        return self.overall.precision >= GOAL_PRECISION and self.overall.recall >= GOAL_RECALL


def _env_path(name: str, default: str) -> Path:
    value = os.environ.get(name)
    path = Path(value) if value else Path(default)
    return path if path.is_absolute() else paths.PROJECT_ROOT / path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Pairwise precision and recall of the warehouse's same-person decisions, "
            "against the synthetic generator's ground truth. Needs the build's master key "
            "in the environment (CDP_MASTER_KEY or CDP_MASTER_KEY_FILE) to match CRM records."
        )
    )
    parser.add_argument(
        "--warehouse-db",
        type=Path,
        default=_env_path("CDP_WAREHOUSE_DB", "data/warehouse.duckdb"),
        help="the dbt target database (default: $CDP_WAREHOUSE_DB or data/warehouse.duckdb)",
    )
    parser.add_argument(
        "--truth-db",
        type=Path,
        default=_env_path("CDP_TRUTH_DB", "data/truth.duckdb"),
        help="the generator's ground truth (default: $CDP_TRUTH_DB or data/truth.duckdb)",
    )
    parser.add_argument(
        "--records",
        default=",".join(DEFAULT_KINDS),
        help=f"record kinds to pair, comma-separated, from {', '.join(KINDS)} "
        f"(default: {','.join(DEFAULT_KINDS)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless precision >= {GOAL_PRECISION} and recall >= {GOAL_RECALL}",
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in str(args.records).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        parser.error(
            f"--records: unknown kind(s) {unknown or kinds}; choose from {', '.join(KINDS)}"
        )
    args.kinds = kinds
    for name in ("warehouse_db", "truth_db"):
        path: Path = getattr(args, name)
        if not path.is_file():
            parser.error(f"--{name.replace('_', '-')}: no such file: {path}")
    return args


def _key_map(
    kind: RecordKind, truth_rows: list[tuple[str, str]], master: keys.MasterKey | None
) -> pa.Table:
    """Truth record key and person -> the key the warehouse holds for the record."""
    record_keys = [row[0] for row in truth_rows]
    persons = [row[1] for row in truth_rows]
    if master is None:
        raise keys.KeyConfigError("a master key is needed to match pseudonymised records")
    domain_key = keys.pseudonym_key(master, "identity")
    warehouse_keys = [
        pseudonym.pseudonym(
            domain_key,
            master.version,
            kind.pseudonymised_as,
            normalise.normalise_identifier(kind.pseudonymised_as, key)
            if kind.is_identifier
            else (key.strip() or None),
        )
        for key in record_keys
    ]
    return pa.table(
        {"record_key": record_keys, "person_id": persons, "warehouse_key": warehouse_keys}
    )


def score(warehouse_db: Path, truth_db: Path, kinds: Sequence[str]) -> Report:
    master = keys.load_master_key()
    con = duckdb.connect()
    try:
        con.execute(f"attach '{warehouse_db}' as warehouse (read_only)")
        con.execute(f"attach '{truth_db}' as truth (read_only)")
        con.execute(
            "create temp table scored (kind varchar, record_key varchar, "
            "true_person varchar, predicted_person varchar)"
        )
        records: dict[str, tuple[int, int, int]] = {}
        for name in kinds:
            kind = KINDS[name]
            truth_rows = con.execute(
                "select record_key, min(person_id) from truth.records "
                "where schema_name = ? and table_name = ? and person_id is not null "
                "group by record_key",
                [kind.truth_schema, kind.truth_table],
            ).fetchall()
            pairs = [(str(key), str(person)) for key, person in truth_rows]
            con.register("key_map", _key_map(kind, pairs, master))
            con.execute(
                """
                insert into scored
                select ?, key_map.record_key, key_map.person_id, resolved.person_key
                from key_map
                inner join warehouse.intermediate.int_identity_records_resolved as resolved
                    on resolved.source_model = ? and resolved.record_key = key_map.warehouse_key
                """,
                [name, kind.source_model],
            )
            con.unregister("key_map")
            counted = con.execute(
                "select count(*), count(*) filter (where predicted_person is null) "
                "from scored where kind = ?",
                [name],
            ).fetchone()
            assert counted is not None
            records[name] = (int(counted[0]), len(pairs), int(counted[1]))
        # unresolved records are singletons: give each its own cluster
        con.execute(
            "update scored set predicted_person = '~unresolved~' || kind || record_key "
            "where predicted_person is null"
        )
        return _pair_counts(con, kinds, records)
    finally:
        con.close()


def _pair_counts(
    con: duckdb.DuckDBPyConnection, kinds: Sequence[str], records: dict[str, tuple[int, int, int]]
) -> Report:
    def pairs(group_by: str) -> dict[tuple[str, str], int]:
        """Pairs within groups, per pair of record kinds (a, b) with a <= b."""
        rows = con.execute(
            f"""
            with cells as (
                select {group_by}, kind, count(*) as n from scored group by all
            )
            select a.kind, b.kind,
                sum(case when a.kind = b.kind then a.n * (a.n - 1) / 2 else a.n * b.n end)
            from cells as a
            inner join cells as b
                on {" and ".join(f"a.{c} = b.{c}" for c in group_by.split(", "))}
                and a.kind <= b.kind
            group by all
            """
        ).fetchall()
        return {(str(a), str(b)): int(n) for a, b, n in rows}

    predicted = pairs("predicted_person")
    true = pairs("true_person")
    correct = pairs("true_person, predicted_person")
    slices = sorted({*predicted, *true})
    by_kind_pair = {
        s: Counts(predicted.get(s, 0), true.get(s, 0), correct.get(s, 0)) for s in slices
    }
    overall = Counts(sum(predicted.values()), sum(true.values()), sum(correct.values()))
    stats = con.execute(
        """
        with predicted as (
            select predicted_person, count(distinct true_person) as n_true, count(*) as n
            from scored group by predicted_person
        ),
        true_persons as (
            select true_person, count(distinct predicted_person) as n_predicted
            from scored group by true_person
        )
        select
            (select count(*) from true_persons),
            (select count(*) from predicted),
            (select count(*) from predicted where n_true > 1),
            (select coalesce(sum(n), 0) from predicted where n_true > 1),
            (select count(*) from true_persons where n_predicted > 1)
        """
    ).fetchone()
    assert stats is not None
    return Report(
        records=records,
        overall=overall,
        by_kind_pair=by_kind_pair,
        true_persons=int(stats[0]),
        predicted_persons=int(stats[1]),
        over_merged_persons=int(stats[2]),
        records_in_over_merged=int(stats[3]),
        split_persons=int(stats[4]),
    )


def render(report: Report, warehouse_db: Path, truth_db: Path) -> str:
    lines = [
        "Identity resolution: pairwise same-person decisions against the ground truth",
        f"  warehouse {warehouse_db}",
        f"  truth     {truth_db}",
        "",
        f"  {'records':<10}{'scored':>12}{'in truth':>12}{'not in wh':>12}{'no person':>12}",
    ]
    for name, (scored, in_truth, unresolved) in report.records.items():
        lines.append(
            f"  {name:<10}{scored:>12,}{in_truth:>12,}{in_truth - scored:>12,}{unresolved:>12,}"
        )
    lines += [
        "",
        f"  {'pairs':<18}{'said same':>14}{'truly same':>14}{'correct':>14}"
        f"{'precision':>11}{'recall':>9}",
    ]

    def row(label: str, counts: Counts) -> str:
        return (
            f"  {label:<18}{counts.predicted:>14,}{counts.true:>14,}{counts.correct:>14,}"
            f"{counts.precision:>11.5f}{counts.recall:>9.5f}"
        )

    for (a, b), counts in report.by_kind_pair.items():
        lines.append(row(f"{a} x {b}", counts))
    lines += [
        row("all", report.overall),
        "",
        f"  persons in truth {report.true_persons:,}; persons resolved {report.predicted_persons:,}",
        f"  over-merged (one resolved person, several true): {report.over_merged_persons:,} "
        f"holding {report.records_in_over_merged:,} records",
        f"  split (one true person, several resolved):       {report.split_persons:,}",
        "",
        f"  precision {report.overall.precision:.5f} (goal >= {GOAL_PRECISION}), "
        f"recall {report.overall.recall:.5f} (goal >= {GOAL_RECALL}): "
        + ("goal met" if report.goal_met else "GOAL NOT MET"),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = score(args.warehouse_db, args.truth_db, args.kinds)
    except keys.KeyConfigError as exc:
        print(f"identity_accuracy: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"identity_accuracy: cannot read the databases: {exc}", file=sys.stderr)
        return 2
    print(render(report, args.warehouse_db, args.truth_db))
    return 1 if args.check and not report.goal_met else 0


if __name__ == "__main__":
    raise SystemExit(main())
