"""The disclosure audit of a whole release, and the release gate (decisions 43 and 45).

A BI user holds every published table at once (and every earlier release).
Checking each mart on its own misses what they give away together, so before
any publish this module:

1. **audits suppression across the release** by linear programming: every
   published number becomes an interval of true values consistent with it
   (exact, or widened by the cell key perturbation's known bounds), the
   additive relations between the tables become constraints (cells add up to
   their total; a cohort's size is its month 0; the cohorts' active buyers of
   a calendar month add up to that month's buyers in the sales mart), and for
   every suppressed number the smallest and largest consistent values are
   computed with HiGHS (``highspy``). Publishing is refused
   unless every such interval is at least as wide as the protection level:
   ``suppression_protection`` people for a count of people (default ceil(k/4)),
   half of its upper end for a sum;
2. **gates releases** on how many people changed since the last published
   release, from the build's population sketch (``audit.audit_bi_population_sketch``:
   256 bucket counts, no person), so a diff between two releases always mixes
   at least ``k`` people. The state lives in an owner-only folder beside the
   published one (``CDP_DISCLOSURE_STATE_DIR``, default ``data/disclosure``),
   which neither a full refresh nor an erasure rebuild touches, and holds no
   personal data and no pseudonym: bucket counts, digests and parameters.

    python -m cdp.disclosure_audit --published data/published/marts.duckdb
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import highspy
import numpy as np
import yaml  # type: ignore[import-untyped]

from cdp import paths

SCHEMA = "bi"
STATE_FILE = "releases.json"
STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600
SUM_PROTECTION_RATIO = 0.5  # a suppressed sum's interval must span half of its upper end
TOLERANCE = 1e-6


class DisclosureError(Exception):
    """The release would disclose; nothing may be published."""


@dataclass(frozen=True)
class MartSpec:
    """How one mart is built: what a BI user knows about its structure."""

    groups: tuple[str, ...]
    cell: str
    people: str
    sums: tuple[str, ...] = ()
    totals: bool = False
    secondary: bool = True  # False: only primary suppression, so a suppressed count is below k
    l_diverse: bool = False  # suppressed cells are left out of the table
    total_label: str = "(all)"
    # where the values of a left-out cell column are declared (a BI user knows them from the docs):
    # (models yml, model, column), read from its accepted_values test
    domain_from: tuple[str, str, str] | None = None


# The published marts. The audit refuses a release holding a table it does not know.
MARTS: dict[str, MartSpec] = {
    "bi_sales_by_region_month": MartSpec(
        ("order_month",), "region", "customer_count", ("order_count", "revenue_rub"), totals=True
    ),
    "bi_customer_segments": MartSpec(
        ("age_band", "region"),
        "rfm_segment",
        "customer_count",
        ("order_count", "revenue_rub"),
        totals=True,
        l_diverse=True,
        domain_from=(
            "models/marts/profile/_profile__models.yml",
            "dim_customer_profile",
            "rfm_segment",
        ),
    ),
    "bi_consent_coverage": MartSpec(
        ("purpose_code", "coverage_month"), "consent_channel", "persons_in_force", totals=True
    ),
    # suppressed cells are left out (their cells are added by _add_cohort_relations)
    "bi_cohort_retention": MartSpec(
        ("cohort_month",), "months_since_first", "active_customers", secondary=False
    ),
    "bi_campaign_performance": MartSpec(
        ("channel",), "campaign_week", "recipient_count", secondary=False
    ),
}
COHORT_MONTHS = 12  # bi_cohort_retention shows months 0..12 after the first order


@dataclass(frozen=True)
class Parameters:
    """How the release was depersonalised (from the build's disclosure ledger)."""

    k: int = 10
    l: int = 2  # noqa: E741 - the l of l-diversity
    max_count_noise: int = 2
    sum_magnitude: float = 1.0
    protection: int = 3
    weakened: tuple[str, ...] = ()

    @property
    def perturbed(self) -> bool:
        return self.max_count_noise > 0


@dataclass(frozen=True)
class Interval:
    """The values of one suppressed number consistent with the whole release."""

    table: str
    row: tuple[str, ...]
    column: str
    low: float
    high: float  # math.inf when unbounded
    required: float

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def protected(self) -> bool:
        return self.width + TOLERANCE >= self.required

    def describe(self) -> str:
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return (
            f"{self.table} {'/'.join(self.row)} {self.column}: consistent values [{self.low:g}, {high}], "
            f"width {self.width:g} < protection {self.required:g}"
        )


@dataclass
class AuditReport:
    """Every suppressed number's interval; the release passes when all are protected."""

    parameters: Parameters
    intervals: list[Interval] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    variables: int = 0
    constraints: int = 0

    @property
    def failures(self) -> list[Interval]:
        return [interval for interval in self.intervals if not interval.protected]

    @property
    def passed(self) -> bool:
        return not self.problems and not self.failures

    def summary(self) -> str:
        head = (
            f"{len(self.intervals)} suppressed numbers over {self.variables} variables and "
            f"{self.constraints} relations"
        )
        if self.passed:
            return head + ": every interval at least as wide as the protection level"
        details = self.problems + [item.describe() for item in self.failures[:5]]
        more = len(self.failures) - 5
        return head + ": " + "; ".join(details) + (f"; and {more} more" if more > 0 else "")


class _Model:
    """Variables with bounds, and linear relations between them."""

    def __init__(self) -> None:
        self.names: list[tuple[str, tuple[str, ...], str]] = []
        self.index: dict[tuple[str, tuple[str, ...], str], int] = {}
        self.low: list[float] = []
        self.high: list[float] = []
        self.required: dict[int, float] = {}
        self.rows: list[tuple[dict[int, float], bool]] = []  # (terms, is_equality): sum <= or == 0
        self.problems: list[str] = []

    def var(self, table: str, row: tuple[str, ...], column: str) -> int:
        name = (table, row, column)
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
            self.low.append(0.0)
            self.high.append(math.inf)
        return self.index[name]

    def bound(self, var: int, low: float, high: float) -> None:
        self.low[var] = max(self.low[var], low)
        self.high[var] = min(self.high[var], high)

    def relation(self, terms: dict[int, float], *, equality: bool) -> None:
        self.rows.append((terms, equality))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return float(value)


def _count_bounds(value: float, params: Parameters, floor: int) -> tuple[float, float]:
    """True counts consistent with a published count (perturbed counts are never below ``floor``)."""
    noise = params.max_count_noise
    if value < floor:  # a rule broken (reported as a problem): only the noise bounds it
        return max(0.0, value - noise), value + noise
    return max(float(floor), value - noise), value + noise


def _sum_bounds(value: float, params: Parameters) -> tuple[float, float]:
    """True sums consistent with a published one: it moved by at most magnitude x sum / people, people >= k."""
    rounding = 0.5
    if not params.perturbed:
        return max(0.0, value - rounding), value + rounding
    share = params.sum_magnitude / params.k
    high = (value + rounding) / (1 - share) if share < 1 else math.inf
    return max(0.0, (value - rounding) / (1 + share)), high


def _load(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    cursor = con.execute(f'select * from {SCHEMA}."{table}"')
    columns = [item[0] for item in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def declared_values(spec: MartSpec) -> set[str]:
    """The values a left-out cell may have, from the accepted_values test that declares them."""
    if spec.domain_from is None:
        return set()
    path, model_name, column_name = spec.domain_from
    doc = yaml.safe_load((paths.PROJECT_ROOT / path).read_text())
    for model in doc.get("models", []):
        if model.get("name") != model_name:
            continue
        for column in model.get("columns", []):
            if column.get("name") != column_name:
                continue
            for test in column.get("data_tests", []):
                if isinstance(test, dict) and "accepted_values" in test:
                    values = test["accepted_values"].get("arguments", test["accepted_values"])
                    return {str(value) for value in values["values"]}
    raise DisclosureError(f"{path}: no accepted_values for {model_name}.{column_name}")


def _add_mart(
    model: _Model,
    table: str,
    spec: MartSpec,
    rows: list[dict[str, Any]],
    column: str,
    params: Parameters,
) -> None:
    """One mart's numbers of ``column`` (its people count or one of its sums) and their relations."""
    is_count = column == spec.people
    groups: dict[tuple[str, ...], list[int]] = {}
    totals: dict[tuple[str, ...], int] = {}
    seen: dict[tuple[str, ...], set[str]] = {}
    labels: set[str] = declared_values(spec)
    for record in rows:
        group = tuple(_text(record[g]) for g in spec.groups)
        label = _text(record[spec.cell])
        var = model.var(table, (*group, label), column)
        value = _number(record[column])
        is_total = bool(record.get("is_total"))
        if record["is_suppressed"] or value is None:
            model.bound(var, 1.0 if is_count else 0.0, math.inf)
            if is_count and not spec.secondary:
                model.bound(var, 0.0, params.k - 1)
            model.required[var] = float(params.protection) if is_count else -1.0
        elif is_count:
            if value < params.k:
                model.problems.append(
                    f"{table} {'/'.join((*group, label))}: {column} {value:g} below k"
                )
            model.bound(var, *_count_bounds(value, params, params.k))
        else:
            model.bound(var, *_sum_bounds(value, params))
        if is_total:
            totals[group] = var
        else:
            groups.setdefault(group, []).append(var)
            seen.setdefault(group, set()).add(label)
            labels.add(label)
    if spec.l_diverse:
        # Suppressed cells are left out; a BI user knows the labels from the other groups.
        for group in set(groups) | set(totals):
            for label in sorted(labels - seen.get(group, set())):
                var = model.var(table, (*group, label), column)
                model.required[var] = float(params.protection) if is_count else -1.0
                groups.setdefault(group, []).append(var)
    if spec.totals:
        for group, total in totals.items():
            terms = {var: 1.0 for var in groups.get(group, [])}
            terms[total] = -1.0
            model.relation(terms, equality=True)


def _month_index(text: str) -> int:
    day = dt.date.fromisoformat(text)
    return day.year * 12 + day.month - 1


def _month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


def _add_cohort_relations(
    model: _Model, cohorts: list[dict[str, Any]], sales: list[dict[str, Any]], params: Parameters
) -> None:
    """Cohort cells left out of the table, and the relations a BI user knows.

    Every (cohort, month) cell not shown is a number from 0 to k - 1 (only primary
    suppression); a cohort's size is its month 0 and bounds its other months; the cohorts'
    active buyers of a calendar month add up to that month's buyers in the sales mart
    (exactly when the month is within 12 months of the first order month, which the sales
    mart's rows show, suppressed or not).
    """
    table = "bi_cohort_retention"
    spec = MARTS[table]
    sales_spec = MARTS["bi_sales_by_region_month"]
    shown = {(_text(r["cohort_month"]), int(r["months_since_first"])): r for r in cohorts}
    rows_shown = any(r["is_suppressed"] for r in cohorts)  # the previous layout
    months = {_month_index(_text(r["order_month"])) for r in sales} | {
        _month_index(cohort) for cohort, _ in shown
    }
    if not months:
        return
    first, last = min(months), max(months)
    by_calendar: dict[int, list[int]] = {}
    for cohort_index in range(first, last + 1):
        cohort = _month_text(cohort_index)
        size = model.var(table, (cohort, "0"), spec.people)
        for offset in range(0, min(COHORT_MONTHS, last - cohort_index) + 1):
            var = model.var(table, (cohort, str(offset)), spec.people)
            record = shown.get((cohort, offset))
            if record is None and rows_shown:
                model.bound(var, 0.0, 0.0)  # suppressed cells have rows: a missing one is empty
            elif record is None:
                model.bound(var, 0.0, params.k - 1)
                model.required[var] = float(params.protection)
            if offset:
                model.relation({var: 1.0, size: -1.0}, equality=False)
            by_calendar.setdefault(cohort_index + offset, []).append(var)
        published_size = next(
            (_number(r["cohort_size"]) for (c, _), r in shown.items() if c == cohort), None
        )
        if published_size is not None:
            model.bound(size, *_count_bounds(published_size, params, params.k))
    for month_index, terms in by_calendar.items():
        key = (_month_text(month_index), sales_spec.total_label)
        total = model.index.get(("bi_sales_by_region_month", key, sales_spec.people))
        if total is None:
            continue
        relation = {var: 1.0 for var in terms}
        relation[total] = -1.0
        model.relation(relation, equality=month_index - first <= COHORT_MONTHS)


def _components(model: _Model) -> list[tuple[list[int], list[int]]]:
    """Groups of variables linked by relations, with their relations (each solved on its own)."""
    parent = list(range(len(model.names)))

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for terms, _ in model.rows:
        first, *rest = list(terms)
        for other in rest:
            parent[find(other)] = find(first)
    members: dict[int, list[int]] = {}
    for var in range(len(model.names)):
        members.setdefault(find(var), []).append(var)
    relations: dict[int, list[int]] = {}
    for number, (terms, _) in enumerate(model.rows):
        relations.setdefault(find(next(iter(terms))), []).append(number)
    return [(variables, relations.get(root, [])) for root, variables in members.items()]


def _solve(model: _Model, params: Parameters) -> list[Interval]:
    found: list[Interval] = []
    for variables, relation_numbers in _components(model):
        targets = [var for var in variables if var in model.required]
        if not targets:
            continue
        problem = _Problem(model, variables, relation_numbers) if relation_numbers else None
        for var in targets:
            low, high = model.low[var], model.high[var]
            if problem is not None:
                low = problem.optimise(var, 1.0)
                high = problem.optimise(var, -1.0)
            table, row_key, column = model.names[var]
            required = model.required[var]
            if required < 0:  # a sum: half of its upper end
                required = 0.0 if math.isinf(high) else SUM_PROTECTION_RATIO * high
            else:  # a count of people: whole numbers, whatever the solver's rounding
                low = math.ceil(low - TOLERANCE)
                high = high if math.isinf(high) else math.floor(high + TOLERANCE)
            found.append(Interval(table, row_key, column, float(low), float(high), required))
    return found


class _Problem:
    """One component's linear program, given to HiGHS once and re-solved for each target.

    Only the objective changes between solves (one variable's cost), so each solve starts
    from the previous optimal basis (a solve that ends without a verdict is repeated cold): about 0.15 ms against 2.5 ms for a cold
    ``scipy.optimize.linprog`` on the same problem (decision 59).
    """

    def __init__(self, model: _Model, variables: list[int], relation_numbers: list[int]) -> None:
        self.model = model
        self.position = {var: i for i, var in enumerate(variables)}
        equalities = [n for n in relation_numbers if model.rows[n][1]]
        inequalities = [n for n in relation_numbers if not model.rows[n][1]]
        columns: list[list[tuple[int, float]]] = [[] for _ in variables]
        for row, number in enumerate(equalities + inequalities):
            for var, coefficient in model.rows[number][0].items():
                columns[self.position[var]].append((row, coefficient))
        lp = highspy.HighsLp()
        lp.num_col_ = len(variables)
        lp.num_row_ = len(equalities) + len(inequalities)
        lp.col_cost_ = np.zeros(len(variables))
        lp.col_lower_ = np.array([model.low[var] for var in variables])
        lp.col_upper_ = np.array([min(model.high[var], highspy.kHighsInf) for var in variables])
        # every relation is "terms == 0" or "terms <= 0"
        lp.row_lower_ = np.array([0.0] * len(equalities) + [-highspy.kHighsInf] * len(inequalities))
        lp.row_upper_ = np.zeros(lp.num_row_)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.cumsum([0] + [len(column) for column in columns])
        lp.a_matrix_.index_ = np.array([row for column in columns for row, _ in column], dtype=int)
        lp.a_matrix_.value_ = np.array([value for column in columns for _, value in column])
        self.lp = lp
        self.highs = self._highs(lp)
        self.costed: int | None = None

    @staticmethod
    def _highs(lp: Any) -> Any:
        highs = highspy.Highs()  # type: ignore[no-untyped-call]
        highs.setOptionValue("output_flag", False)
        highs.passModel(lp)
        return highs

    def optimise(self, var: int, sign: float) -> float:
        """The smallest (sign 1) or largest (sign -1) value of one variable over the release."""
        column = self.position[var]
        if self.costed is not None:
            self.highs.changeColCost(self.costed, 0.0)
        self.highs.changeColCost(column, sign)
        self.costed = column
        self.highs.run()
        status = self.highs.getModelStatus()
        if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
            # A warm start can end without a verdict (status Unknown, seen on an unbounded
            # maximum), and presolve may not tell unbounded from infeasible: solve this one
            # again from scratch, without presolve, before calling the release inconsistent.
            self.highs.clearSolver()
            self.highs.setOptionValue("presolve", "off")
            self.highs.run()
            status = self.highs.getModelStatus()
            self.highs.setOptionValue("presolve", "choose")
        if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
            # Still no verdict (seen: an unbounded maximum ending "Unknown" both ways above):
            # a new solver given only this objective, as a cold solve of its own would be.
            cold = self._highs(self.lp)
            cold.changeColCost(column, sign)
            cold.run()
            status = cold.getModelStatus()
            if status == highspy.HighsModelStatus.kOptimal:
                return float(sign * cold.getInfo().objective_function_value)
        if status == highspy.HighsModelStatus.kUnbounded:
            # the number can be anything above its lower end
            return math.inf if sign < 0 else self.model.low[var]
        if status != highspy.HighsModelStatus.kOptimal:
            name = self.model.names[var]
            raise DisclosureError(
                f"the release is inconsistent with its own rules near {name[0]} "
                f"{'/'.join(name[1])} {name[2]} ({self.highs.modelStatusToString(status)}): "
                "refusing to publish what cannot be audited"
            )
        return float(sign * self.highs.getInfo().objective_function_value)


def audit_release(published_db: Path, params: Parameters) -> AuditReport:
    """Every suppressed number of the release, with the interval a BI user can narrow it to."""
    report = AuditReport(parameters=params)
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        tables = [
            str(row[0])
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1",
                [SCHEMA],
            ).fetchall()
        ]
        data = {table: _load(con, table) for table in tables if table in MARTS}
    finally:
        con.close()
    for table in tables:
        if table not in MARTS:
            report.problems.append(
                f"{table}: not known to the disclosure audit (add it to cdp.disclosure_audit.MARTS)"
            )
    columns = {spec.people for spec in MARTS.values()} | {
        column for spec in MARTS.values() for column in spec.sums
    }
    for column in sorted(columns - {MARTS["bi_cohort_retention"].people}):
        # the cohorts' buyers are audited in one model with the sales mart's (they count the same)
        model = _Model()
        for table, rows in data.items():
            spec = MARTS[table]
            if column == spec.people or column in spec.sums:
                _add_mart(model, table, spec, rows, column, params)
        if column == "customer_count" and "bi_cohort_retention" in data:
            # the cohorts count the sales mart's buyers: one model for both
            _add_mart(
                model,
                "bi_cohort_retention",
                MARTS["bi_cohort_retention"],
                data["bi_cohort_retention"],
                "active_customers",
                params,
            )
            _add_cohort_relations(
                model,
                data["bi_cohort_retention"],
                data.get("bi_sales_by_region_month", []),
                params,
            )
        report.problems.extend(model.problems)
        report.variables += len(model.names)
        report.constraints += len(model.rows)
        report.intervals.extend(_solve(model, params))
    return report


def parameters_from_warehouse(warehouse: Path) -> Parameters:
    """The parameters of the last build, from its disclosure ledger."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = con.execute(
            "select k_anonymity, l_diversity, perturbation_max_count_noise, perturbation_sum_magnitude, "
            "suppression_protection, weakened from audit.audit_bi_disclosure_ledger "
            "order by released_at desc, release_id limit 1"
        ).fetchone()
    except duckdb.Error as exc:
        raise DisclosureError(
            f"the warehouse has no usable disclosure ledger ({exc}): build the marts first"
        ) from None
    finally:
        con.close()
    if row is None:
        raise DisclosureError("the disclosure ledger is empty: build the marts first")
    weakened = tuple(item for item in str(row[5] or "").split(",") if item)
    return Parameters(
        k=int(row[0]),
        l=int(row[1]),
        max_count_noise=int(row[2] or 0),
        sum_magnitude=float(row[3] or 0.0),
        protection=int(row[4]),
        weakened=weakened,
    )


# ---------------------------------------------------------------------------------------------
# The release gate and the durable release record.


def state_dir() -> Path:
    """Owner-only folder of the release state (``CDP_DISCLOSURE_STATE_DIR``), beside the published one."""
    value = os.environ.get("CDP_DISCLOSURE_STATE_DIR")
    if value:
        path = Path(value)
        return path if path.is_absolute() else paths.PROJECT_ROOT / path
    return paths.published_dir().parent / "disclosure"


@dataclass
class ReleaseState:
    """What earlier releases left: per release its bucket counts and content digest, never a person.

    ``committed`` is the release BI currently reads; ``pending`` one written before its swap (a
    crash between the two leaves it unknown whether BI got it, so the gate checks against both).
    """

    committed: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    releases: list[dict[str, Any]] = field(default_factory=list)


def load_state(folder: Path) -> ReleaseState:
    path = folder / STATE_FILE
    if not path.exists():
        return ReleaseState()
    doc = json.loads(path.read_text())
    return ReleaseState(
        committed=dict(doc.get("committed") or {}),
        pending=dict(doc.get("pending") or {}),
        releases=list(doc.get("releases", [])),
    )


@contextlib.contextmanager
def _owner_only() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def save_state(folder: Path, state: ReleaseState) -> None:
    """Written aside, fsynced and renamed, owner-only: a crash leaves the old state or the new one."""
    with _owner_only():
        folder.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
        folder.chmod(STATE_DIR_MODE)
        temp = folder / f".{STATE_FILE}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, STATE_FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(state), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(STATE_FILE_MODE)
        os.replace(temp, folder / STATE_FILE)
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def population_sketch(warehouse: Path) -> list[int]:
    """The build's 256 bucket counts (audit.audit_bi_population_sketch)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select bucket, people from audit.audit_bi_population_sketch order by bucket"
        ).fetchall()
    except duckdb.Error as exc:
        raise DisclosureError(
            f"the warehouse has no population sketch ({exc}): build the marts first"
        ) from None
    finally:
        con.close()
    sketch = [0] * 256
    for bucket, people in rows:
        sketch[int(bucket)] = int(people)
    return sketch


def changed_people_at_least(previous: list[int], current: list[int]) -> int:
    """A lower bound on the people added, removed or moved between two sketches.

    An added or removed person moves one bucket by one; a person whose cells changed
    moves their fingerprint from one bucket to another (two units), or stays in its
    bucket (then they are not counted: a lower bound).
    """
    distance = sum(abs(a - b) for a, b in zip(previous, current, strict=True))
    return (distance + 1) // 2


def content_digest(published_db: Path) -> str:
    """A digest of every published value except the build time (as_of), table by table."""
    digest = hashlib.sha256()
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        for table in sorted(MARTS):
            columns = [
                str(row[0])
                for row in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? and column_name <> 'as_of' "
                    "order by ordinal_position",
                    [SCHEMA, table],
                ).fetchall()
            ]
            if not columns:
                continue
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(f'select {listed} from {SCHEMA}."{table}" order by all').fetchall()
            digest.update(table.encode())
            digest.update(repr(rows).encode())
    finally:
        con.close()
    return digest.hexdigest()


@dataclass
class GateDecision:
    """Whether the release may go out, and why."""

    allowed: bool
    reason: str
    changed_at_least: int
    same_content: bool


def release_gate(
    state: ReleaseState, sketch: list[int], digest: str, min_changed_people: int
) -> GateDecision:
    """A first release, the same values as the last one, or one after enough people changed.

    Checked against the release BI reads and against one that may have been swapped in
    just before a crash (``pending``).
    """
    earlier = [release for release in (state.committed, state.pending) if release.get("sketch")]
    if not earlier:
        return GateDecision(True, "the first release", sum(sketch), False)
    if all(release.get("content_digest") == digest for release in earlier):
        return GateDecision(True, "the same values as the last release", 0, True)
    changed = min(changed_people_at_least(list(release["sketch"]), sketch) for release in earlier)
    if changed >= min_changed_people:
        return GateDecision(
            True, f"at least {changed} people changed since the last release", changed, False
        )
    return GateDecision(
        False,
        f"only {changed} people are known to have changed since the last release, fewer than "
        f"{min_changed_people}: a diff of the two releases could single them out; the last release "
        "stays published until more has changed (decision 45)",
        changed,
        False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdp disclosure-audit",
        description="Audit a published (or candidate) release: the interval of every suppressed number.",
    )
    parser.add_argument(
        "--published", type=Path, default=None, help="default: CDP_PUBLISHED_DIR/marts.duckdb"
    )
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="where the build's parameters are read"
    )
    args = parser.parse_args(argv)
    try:
        params = parameters_from_warehouse(args.warehouse or paths.warehouse_db())
        report = audit_release(args.published or paths.published_db(), params)
    except (DisclosureError, duckdb.Error) as exc:
        print(f"cdp disclosure audit: error: {exc}", file=sys.stderr)
        return 2
    print(f"cdp disclosure audit: {report.summary()}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
