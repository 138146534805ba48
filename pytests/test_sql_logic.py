"""The project's SQL logic where it has edge cases, run in DuckDB without dbt (fast).

The SQL under test is the project's own text: the ``triage`` macro rendered by
Jinja (the engine dbt renders it with), the production-calendar model rendered
on the holiday seed, and the deadline and RFM CTEs cut from their models. Only
the inputs are made by hand. dbt's own builds test the same logic end to end
(test_rights, test_reliability, test_marts); these tests pin the edge cases:

- ``triage()``: every row gets exactly one status; duplicates by load order,
  superseded versions by ``version_order``; quarantine wins; one row per key kept.
- Request deadlines: working days of the Russian production calendar (holidays,
  moved days off, working Saturdays), counted from the day after receipt;
  calendar days; GDPR's month. The whole tracking model (rendered with the real
  ``as_of`` macro): each request's one status, review reason, closure, and the
  open, overdue and closed-late flags as of a given moment.
- RFM scores: quintiles, the most recent buyer scoring highest on recency,
  ties broken by person_key so that two builds agree.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

MACROS = ROOT / "macros"
SEEDS = ROOT / "seeds"
TRIAGE = MACROS / "staging" / "triage.sql"
CALENDAR = ROOT / "models" / "intermediate" / "rights" / "int_rights__calendar.sql"
TRACKING = ROOT / "models" / "intermediate" / "rights" / "int_rights__request_tracking.sql"
AS_OF = MACROS / "consent" / "as_of.sql"
PROFILE = ROOT / "models" / "marts" / "profile" / "dim_customer_profile.sql"


def _jinja() -> jinja2.Environment:
    # SQL, not HTML: nothing to escape (dbt renders with autoescape off too).
    return jinja2.Environment(  # noqa: S701
        extensions=["jinja2.ext.do"], undefined=jinja2.StrictUndefined
    )


@functools.cache
def _duckdb_versions() -> dict[str, Any]:
    """The cross-database macros (macros/cross_db) the rendered models call, as dbt dispatches
    them on DuckDB: each name bound to its ``duckdb__`` version, else its ``default__``."""
    found: dict[str, Any] = {}
    for path in sorted((MACROS / "cross_db").glob("*.sql")):
        module = _jinja().from_string(path.read_text(encoding="utf-8")).module
        macros = {name: getattr(module, name) for name in dir(module) if "__" in name}
        for name, macro in sorted(macros.items()):
            adapter, base = name.split("__", 1)
            if adapter == "duckdb" or (adapter == "default" and base not in found):
                found[base] = macro
    return found


def _cte(model: Path, name: str) -> str:
    """The body of CTE ``name`` in ``model``, as written there (``name as (`` ... ``),``)."""
    text = model.read_text(encoding="utf-8")
    found = re.search(rf"^{name} as \(\n(.*?)\n\),?\n", text, flags=re.S | re.M)
    assert found, f"no CTE {name} in {model.relative_to(ROOT)}"
    return found.group(1)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    try:
        yield connection
    finally:
        connection.close()


# --------------------------------------------------------------------------- triage()


def _triage_sql(**arguments: Any) -> str:
    # adapter.dispatch('triage', 'cdp') runs default__triage: there is no adapter-specific one.
    names = {m.group(1) for m in re.finditer(r"macro (\w+)\(", _all_macros())}
    assert sorted(n for n in names if n.endswith("__triage")) == ["default__triage"]
    module: Any = _jinja().from_string(TRIAGE.read_text(encoding="utf-8")).module
    return str(module.default__triage(**arguments))


def _all_macros() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(MACROS.rglob("*.sql")))


TRIAGE_ROWS = [
    # id, value, updated_at, _loaded_at, _batch_id
    ("A", "a1", "2026-01-01", "2026-01-01 10:00", "b1"),  # superseded by A/a2
    ("A", "a1", "2026-01-01", "2026-01-02 10:00", "b2"),  # a re-delivery of the row above
    ("A", "a2", "2026-01-05", "2026-01-02 10:00", "b2"),  # kept: the newest version
    ("B", "b1", "2026-01-03", "2026-01-01 10:00", "b1"),  # kept: newer than the late b0
    ("B", "b0", "2026-01-02", "2026-01-03 10:00", "b3"),  # superseded though loaded last
    ("C", None, "2026-01-01", "2026-01-01 10:00", "b1"),  # quarantined
    ("C", None, "2026-01-01", "2026-01-02 10:00", "b2"),  # quarantined too, never a duplicate
    ("D", "d1", "2026-01-01", "2026-01-01 10:00", "b1"),  # kept: a tie on updated_at ...
    ("D", "d2", "2026-01-01", "2026-01-02 10:00", "b2"),  # ... the later load wins
    (None, "x", "2026-01-01", "2026-01-01 10:00", "b1"),  # quarantined: no key
]
EXPECTED = [
    ("quarantined", None, "x", "b1"),
    ("superseded", "A", "a1", "b1"),
    ("duplicate", "A", "a1", "b2"),
    ("kept", "A", "a2", "b2"),
    ("kept", "B", "b1", "b1"),
    ("superseded", "B", "b0", "b3"),
    ("quarantined", "C", None, "b1"),
    ("quarantined", "C", None, "b2"),
    ("superseded", "D", "d1", "b1"),
    ("kept", "D", "d2", "b2"),
]


def test_triage_gives_every_row_exactly_one_status(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "create table landed (id varchar, value varchar, updated_at date, "
        "_loaded_at timestamp, _batch_id varchar)"
    )
    con.executemany("insert into landed values (?, ?, ?, ?, ?)", TRIAGE_ROWS)
    sql = _triage_sql(
        from_cte="candidates",
        reject_reason="case when id is null then 'missing_key' "
        "when value is null then 'missing_value' end",
        copy_columns=["id", "value", "updated_at"],
        key_columns=["id"],
        version_order="updated_at desc nulls last",
    )
    rows = con.execute(
        f"""
        with candidates as (
            select *, md5(concat_ws(chr(31), id, value, updated_at)) as _row_fingerprint
            from landed
        ),
        triaged as ({sql})
        select row_status, id, value, _batch_id, reject_reason from triaged
        order by id nulls first, _loaded_at, value
        """
    ).fetchall()
    assert len(rows) == len(TRIAGE_ROWS)  # no row vanishes, none is doubled
    assert [r[:4] for r in rows] == EXPECTED
    reasons = {r[1]: r[4] for r in rows if r[0] == "quarantined"}
    assert reasons == {None: "missing_key", "C": "missing_value"}
    assert all(r[4] is None for r in rows if r[0] != "quarantined")
    kept = [r[1] for r in rows if r[0] == "kept"]
    assert sorted(kept) == ["A", "B", "D"]  # exactly one kept row per usable key


def test_triage_a_quarantined_row_never_makes_a_usable_one_a_duplicate(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Copies by key alone (as web events are): an unusable first delivery does not hide the
    usable one loaded after it, which is kept; its own re-delivery is the duplicate."""
    con.execute("create table landed (id varchar, value varchar, _loaded_at timestamp)")
    con.executemany(
        "insert into landed values (?, ?, ?)",
        [
            ("E", None, "2026-01-01 10:00"),
            ("E", "e1", "2026-01-02 10:00"),
            ("E", "e1", "2026-01-03 10:00"),
        ],
    )
    sql = _triage_sql(
        from_cte="candidates",
        reject_reason="case when value is null then 'missing_value' end",
        copy_columns=["id"],
        key_columns=["id"],
        version_order="_loaded_at desc",
    )
    rows = con.execute(
        f"""
        with candidates as (
            select *, 'b' as _batch_id, md5(concat_ws(chr(31), id, value)) as _row_fingerprint
            from landed
        ),
        triaged as ({sql})
        select row_status from triaged order by _loaded_at
        """
    ).fetchall()
    assert rows == [("quarantined",), ("kept",), ("duplicate",)]


# --------------------------------------------------------------------------- triage: only what can collide
#
# The recipe sorts and fingerprints only the rows of groups with more than one raw row
# (triage_source counts them, triage_fingerprint is null for a row alone, triage sorts the
# rest; docs/decisions.md, 60). Reference: the triage as it was before, a full sort of every
# row with a fingerprint on every row, kept here verbatim.

REFERENCE_TRIAGE = """
select
    *,
    case
        when reject_reason is not null then 'quarantined'
        when copy_number > 1 then 'duplicate'
        when version_number > 1 then 'superseded'
        else 'kept'
    end as row_status
from (
    select
        *,
        case
            when reject_reason is null and copy_number = 1
                then row_number() over (
                    partition by
                        reject_reason is null and copy_number = 1,
                        {{ key_columns | join(', ') }}
                    order by {{ version_order }}, _loaded_at desc, _batch_id desc, _row_fingerprint
                )
        end as version_number
    from (
        select
            *,
            row_number() over (
                partition by reject_reason is null, {{ copy_columns | join(', ') }}
                order by _loaded_at, _batch_id, _row_fingerprint
            ) as copy_number
        from (
            select
                *,
                {{ reject_reason }} as reject_reason
            from {{ from_cte }}
        ) as checked
    ) as copies
) as versions
"""

RECIPE_MACROS = [
    MACROS / "staging" / "triage.sql",
    MACROS / "staging" / "incremental.sql",
    MACROS / "cross_db" / "inline_cte.sql",
]


@functools.cache
def _recipe() -> Any:
    """The recipe's macros as dbt renders them for DuckDB in a full build: dispatch picks
    duckdb__<name>, else default__<name>; is_incremental() is false."""
    found: dict[str, Any] = {}

    def dispatch(name: str, _namespace: str) -> Any:
        return getattr(found["module"], f"duckdb__{name}", None) or getattr(
            found["module"], f"default__{name}"
        )

    def raise_compiler_error(message: str) -> None:
        raise AssertionError(message)

    env = _jinja()
    env.globals.update(
        adapter=types.SimpleNamespace(dispatch=dispatch),
        exceptions=types.SimpleNamespace(raise_compiler_error=raise_compiler_error),
        is_incremental=lambda: False,
        # dbt's return(): the value a macro call gives; here the rendered text of a dispatch
        **{"return": lambda value: value},
    )
    text = "\n".join(path.read_text(encoding="utf-8") for path in RECIPE_MACROS)
    found["module"] = env.from_string(text).module
    return found["module"]


# (copy_columns, key_columns, version_order): web events (copies are the key: the version
# sort is skipped), CRM (copies by content), order lines (a two-column key), and copies by
# some columns with a version order of the model's own.
TRIAGE_SHAPES = [
    (["id"], ["id"], "_loaded_at"),
    (["_row_fingerprint"], ["id"], "version desc nulls last"),
    (["_row_fingerprint"], ["id", "line"], "_loaded_at desc"),
    (["id", "value"], ["id"], "version desc nulls last, _loaded_at"),
]
RAW_COLUMNS = ["id", "line", "value", "version"]
landed_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", " a", "a ", "b", "c", "", None]),
        st.sampled_from([1, 2, None]),
        st.sampled_from(["x", "y", None]),
        st.sampled_from([1, 2, None]),
        st.sampled_from(["2026-01-01 10:00", "2026-01-02 10:00", "2026-01-03 10:00"]),
        st.sampled_from(["b1", "b2"]),
    ),
    min_size=1,
    max_size=30,
)


def _triaged(
    con: duckdb.DuckDBPyConnection, shape: tuple[list[str], list[str], str], *, reference: bool
) -> list[tuple[Any, ...]]:
    copy_columns, key_columns, version_order = shape
    arguments: dict[str, Any] = {
        "from_cte": "typed",
        "reject_reason": "case when id is null or (line is null and 'line' in ("
        + ", ".join(f"'{c}'" for c in key_columns)
        + ")) then 'missing_key' when value is null then 'missing_value' end",
        "copy_columns": copy_columns,
        "key_columns": key_columns,
        "version_order": version_order,
    }
    recipe = _recipe()
    group_keys = {"id": "nullif(trim(raw_rows.id), '')"}
    if "line" in key_columns:
        group_keys["line"] = "raw_rows.line"
    if reference:
        head = "source as (select * from landed)"
        fingerprint = str(recipe.duckdb__row_fingerprint(RAW_COLUMNS))
        rows_cte = "source"
        triage = _jinja().from_string(REFERENCE_TRIAGE).render(**arguments)
    else:
        head = str(recipe.default__triage_source("landed", group_keys, {}))
        fingerprint = str(recipe.default__triage_fingerprint(RAW_COLUMNS))
        rows_cte = "triage_rows"
        triage = str(recipe.default__triage(**arguments))
    sql = f"""
        with {head},
        typed as (
            select nullif(trim(id), '') as id, line, value, version, _loaded_at, _batch_id,
                {fingerprint} as _row_fingerprint
            from {rows_cte}
        ),
        triaged as ({triage})
        select id, line, value, version, _loaded_at, _batch_id, row_status, reject_reason,
            _row_fingerprint is not null as is_fingerprinted
        from triaged
    """
    return sorted(con.execute(sql).fetchall(), key=repr)


def _load(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    con.execute("drop table if exists landed")
    con.execute(
        "create table landed (id varchar, line integer, value varchar, version integer, "
        "_loaded_at timestamp, _batch_id varchar)"
    )
    con.executemany("insert into landed values (?, ?, ?, ?, ?, ?)", rows)


@pytest.mark.parametrize("shape", TRIAGE_SHAPES, ids=["web", "crm", "order_items", "columns"])
@settings(
    max_examples=int(os.environ.get("CDP_HYP_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=landed_rows)
def test_triage_sorting_only_shared_groups_equals_the_full_sort(
    con: duckdb.DuckDBPyConnection,
    shape: tuple[list[str], list[str], str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Every row gets the status the full sort gives it, and only rows that share their group
    (by normalised key) or lack part of the key are fingerprinted."""
    _load(con, rows)
    got = _triaged(con, shape, reference=False)
    want = _triaged(con, shape, reference=True)
    assert [r[:8] for r in got] == [r[:8] for r in want]
    key_parts = 2 if "line" in shape[1] else 1
    groups: dict[tuple[Any, ...], int] = {}
    for row in rows:
        key = ((row[0] or "").strip() or None, row[1])[:key_parts]
        groups[key] = groups.get(key, 0) + 1
    shared = sum(n for key, n in groups.items() if n > 1 or None in key)
    assert sum(r[8] for r in got) == shared


def test_triage_shared_groups_comparison_can_fail(con: duckdb.DuckDBPyConnection) -> None:
    """The comparison is real: a triage that took every row for alone (no sort) differs."""
    rows = [("a", 1, "x", 1, "2026-01-01 10:00", "b1"), ("a", 1, "y", 2, "2026-01-02 10:00", "b1")]
    _load(con, rows)
    recipe = _recipe()
    weak = str(recipe.default__triage_fingerprint(RAW_COLUMNS)).replace("_triage_shared", "false")
    head = str(recipe.default__triage_source("landed", {"id": "nullif(trim(raw_rows.id), '')"}, {}))
    triage = str(
        recipe.default__triage(
            from_cte="typed",
            reject_reason="null",
            copy_columns=["id"],
            key_columns=["id"],
            version_order="_loaded_at",
        )
    )
    statuses = con.execute(
        f"with {head}, typed as (select *, {weak} as _row_fingerprint from triage_rows), "
        f"triaged as ({triage}) select row_status from triaged order by _loaded_at"
    ).fetchall()
    assert statuses == [("kept",), ("kept",)]  # two kept rows for one key: the invariant broken
    assert [r[6] for r in _triaged(con, TRIAGE_SHAPES[0], reference=True)] == ["kept", "duplicate"]


# --------------------------------------------------------------------------- deadlines


def _calendar(con: duckdb.DuckDBPyConnection) -> None:
    """int_rights__calendar, rendered on the holiday seed, as table ``calendar``."""
    con.execute(
        "create table ru_public_holidays as select * from read_csv(?, header = true, columns = "
        "{'calendar_date': 'date', 'day_type': 'varchar', 'day_name': 'varchar', "
        "'source': 'varchar'})",
        [str(SEEDS / "ru_public_holidays.csv")],
    )
    sql = (
        _jinja()
        .from_string(CALENDAR.read_text(encoding="utf-8"))
        .render(ref=lambda name: name, **_duckdb_versions())
    )
    con.execute(f"create table calendar as {sql}")


@functools.cache
def _holidays() -> tuple[set[dt.date], set[dt.date]]:
    off: set[dt.date] = set()
    working: set[dt.date] = set()
    with (SEEDS / "ru_public_holidays.csv").open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            day = dt.date.fromisoformat(row["calendar_date"])
            (working if row["day_type"] == "working_weekend" else off).add(day)
    return off, working


def _working_days_after(received: dt.date, count: int) -> dt.date:
    """The 152-FZ rule written plainly: the count-th working day after the day of receipt."""
    off, working = _holidays()
    day = received
    while count:
        day += dt.timedelta(days=1)
        if day in working or (day.weekday() < 5 and day not in off):
            count -= 1
    return day


def _deadlines(con: duckdb.DuckDBPyConnection) -> None:
    """The calendar and the rights_deadlines seed, as tables ``calendar`` and ``rights_deadlines``."""
    _calendar(con)
    con.execute(
        "create table rights_deadlines as select * from read_csv(?, header = true, columns = "
        "{'jurisdiction': 'varchar', 'request_type': 'varchar', 'deadline_count': 'integer', "
        "'deadline_unit': 'varchar', 'extension_count': 'integer', 'legal_reference': 'varchar'})",
        [str(SEEDS / "rights_deadlines.csv")],
    )


def _due(con: duckdb.DuckDBPyConnection, requests: list[tuple[str, str, str, dt.date]]) -> Any:
    _deadlines(con)
    con.execute(
        "create table requests (request_id varchar, jurisdiction varchar, request_type varchar, "
        "received_date date)"
    )
    con.executemany("insert into requests values (?, ?, ?, ?)", requests)
    rows = con.execute(
        f"""
        with deadlines as (select * from rights_deadlines),
        due as ({_jinja().from_string(_cte(TRACKING, "due")).render(**_duckdb_versions())})
        select request_id, due_date from due order by request_id
        """
    ).fetchall()
    return dict(rows)


def test_calendar_counts_working_days_of_the_production_calendar(
    con: duckdb.DuckDBPyConnection,
) -> None:
    _calendar(con)
    off, working = _holidays()
    rows = con.execute(
        "select calendar_date, is_working_day, working_day_number from calendar order by 1"
    ).fetchall()
    assert rows[0][0] == dt.date(min(off).year, 1, 1) and rows[-1][0] == dt.date(
        max(off).year, 12, 31
    )
    number = 0
    for day, is_working, working_day_number in rows:
        expected = day in working or (day.weekday() < 5 and day not in off)
        number += expected
        assert (is_working, working_day_number) == (expected, number), day
    assert working and all(day.weekday() == 5 for day in working)  # the seed's working Saturdays


def test_request_deadlines_in_working_days_calendar_days_and_months(
    con: duckdb.DuckDBPyConnection,
) -> None:
    due = _due(
        con,
        [
            # New Year: 31 Dec and 1-9 Jan off, so 10 working days end on 23 January.
            ("new_year", "RU", "access", dt.date(2025, 12, 30)),
            # 1 and 11 May off: the 7th working day after 29 April is 12 May.
            ("may", "RU", "rectification", dt.date(2026, 4, 29)),
            # Received on a Saturday: the count starts on Monday.
            ("weekend", "RU", "objection", dt.date(2026, 11, 7)),
            # Saturday 27 April 2024 was a working day (the count includes it).
            ("working_saturday", "RU", "rectification", dt.date(2024, 4, 25)),
            ("calendar_days", "RU", "erasure", dt.date(2026, 1, 31)),
            ("month_end", "EU", "access", dt.date(2026, 1, 31)),
            ("unknown_type", "RU", "complaint", dt.date(2026, 1, 31)),
        ],
    )
    assert due["new_year"] == dt.date(2026, 1, 23)
    assert due["may"] == dt.date(2026, 5, 12)
    assert due["weekend"] == dt.date(2026, 11, 20)
    assert due["working_saturday"] == _working_days_after(dt.date(2024, 4, 25), 7)
    assert dt.date(2024, 4, 27) < due["working_saturday"]
    assert due["calendar_days"] == dt.date(2026, 3, 2)
    assert due["month_end"] == dt.date(2026, 2, 28)
    assert due["unknown_type"] is None  # no deadline known: none invented


def test_working_day_deadlines_equal_the_plain_rule_on_every_day(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Every receipt date of 2024-2026 (until the calendar's end leaves room), 7 and 10 days."""
    start, end = dt.date(2024, 1, 1), dt.date(2026, 12, 10)
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    requests = [
        (f"{kind}-{day.isoformat()}", "RU", kind, day)
        for day in days
        for kind in ("access", "rectification")
    ]
    due = _due(con, requests)
    counts = {"access": 10, "rectification": 7}
    wrong = [
        (rid, due[rid])
        for rid, _, kind, day in requests
        if due[rid] != _working_days_after(day, counts[kind])
    ]
    assert wrong == []


# Requests for the whole tracking model: id, type, jurisdiction, verified, received_at,
# subject_issue, is_subject_erased, erased_by_request_id, rectification_field.
TRACKED_AS_OF = "2026-11-20 00:00:00.000000"
TRACKED = [
    ("export_due", "access", "RU", True, "2026-11-02 09:00", None, False, None, None),
    ("build_late", "restriction", "RU", True, "2026-10-01 09:00", None, False, None, None),
    ("purged", "erasure", "EU", True, "2026-10-25 09:00", None, False, None, None),
    ("exported", "access", "RU", True, "2026-10-26 09:00", None, False, None, None),
    ("unverified", "objection", "RU", False, "2026-09-01 09:00", None, False, None, None),
    ("shared", "objection", "RU", True, "2026-09-01 09:00", None, False, None, None),
    ("nobody", "objection", "RU", True, "2026-09-01 09:00", None, False, None, None),
    ("mistyped", "objection", "RU", True, "2026-09-01 09:00", "identifier_type_mismatch", False,
     None, None),
    ("mistyped_run", "restriction", "RU", True, "2026-09-01 09:00", "invalid_identifier", False,
     None, None),
    ("unreadable", "rectification", "RU", True, "2026-11-19 09:00", None, False, None, None),
    ("ended_by_erasure", "restriction", "RU", True, "2026-10-20 09:00", None, True, "purged",
     None),
    ("after_erasure", "access", "RU", True, "2026-11-10 09:00", None, True, "purged", None),
    ("in_time", "rectification", "RU", True, "2026-11-18 09:00", None, False, None, "email"),
    ("future", "access", "RU", True, "2026-11-21 09:00", None, False, None, None),
]  # fmt: skip


def _tracking(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """int_rights__request_tracking, rendered with the real as_of macro, on TRACKED."""
    _deadlines(con)
    con.execute(
        "create table subject_requests (request_id varchar, request_type varchar, "
        "jurisdiction varchar, is_verified boolean, received_at timestamp, subject_issue varchar, "
        "is_subject_erased boolean, erased_by_request_id varchar, rectification_field varchar, "
        "subject_id_type varchar)"
    )
    con.executemany(
        "insert into subject_requests values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'email')", TRACKED
    )
    con.execute(
        "create table request_persons as select * from (values "
        "('export_due', 'pA', true), ('build_late', 'pB', true), ('purged', 'pC', true), "
        "('exported', 'pD', true), ('unverified', 'pE', true), ('in_time', 'pF', true), "
        "('shared', 'pG', false), ('shared', 'pH', false), ('mistyped_run', 'pI', true), "
        "('unreadable', 'pJ', true)"
        ") as t(request_id, person_key, is_unambiguous)"
    )
    con.execute(
        "create table executions as select * from (values "
        "('build_late', timestamp '2026-11-10 03:00'), ('in_time', timestamp '2026-11-19 03:00'), "
        "('mistyped_run', timestamp '2026-09-02 03:00')) as t(request_id, executed_at)"
    )
    con.execute(
        "create table closures as select * from (values "
        "('purged', 'purge_erasure', timestamp '2026-11-01 04:00'), "
        "('exported', 'access_export', timestamp '2026-11-12 15:00')"
        ") as t(request_id, closed_by, closed_at)"
    )
    as_of: Any = _jinja().from_string(AS_OF.read_text(encoding="utf-8")).module
    tables = {
        "stg_privacy__subject_requests": "subject_requests",
        "int_rights__request_persons": "request_persons",
        "rights_deadlines": "rights_deadlines",
        "int_rights__calendar": "calendar",
        "int_rights__request_executions": "executions",
        "stg_rights__request_closures": "closures",
    }
    sql = (
        _jinja()
        .from_string(TRACKING.read_text(encoding="utf-8"))
        .render(
            ref=tables.__getitem__,
            as_of=lambda: as_of.default__as_of(TRACKED_AS_OF),
            **_duckdb_versions(),
        )
    )
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_request_tracking_statuses_reviews_and_overdue_flags(
    con: duckdb.DuckDBPyConnection,
) -> None:
    tracked = _tracking(con)
    assert set(tracked) == {r[0] for r in TRACKED} - {"future"}  # received after as_of: not yet
    assert all(t["as_of"] == dt.datetime(2026, 11, 20) for t in tracked.values())

    def picked(request_id: str, *columns: str) -> tuple[Any, ...]:
        return tuple(tracked[request_id][c] for c in columns)

    status = ("request_status", "review_reason", "closed_by", "is_open")
    assert picked("export_due", *status) == ("awaiting_export", None, None, True)
    assert picked("build_late", *status) == ("closed", None, "build", False)
    assert picked("purged", *status) == ("closed", None, "purge_erasure", False)
    assert picked("exported", *status) == ("closed", None, "access_export", False)
    assert picked("unverified", *status) == ("unverified", None, None, False)
    assert picked("shared", *status) == ("needs_review", "shared_identifier", None, True)
    assert picked("nobody", *status) == ("needs_review", "unknown_subject", None, True)
    assert picked("mistyped", *status) == ("needs_review", "identifier_type_mismatch", None, True)
    # executed by a build before decision 51 on an unusable identifier: closes nothing
    assert picked("mistyped_run", *status) == ("needs_review", "invalid_identifier", None, True)
    assert picked("unreadable", *status) == ("invalid_details", None, None, True)
    # the erasure of the person ends their other requests; an access request after it is
    # never exported (nobody is left to export)
    assert picked("ended_by_erasure", *status) == ("closed", None, "erasure", False)
    assert picked("after_erasure", *status) == ("needs_review", "subject_erased", None, True)
    assert picked("in_time", *status) == ("closed", None, "build", False)
    assert picked("shared", "person_key", "candidate_person_count") == (None, 2)
    assert picked("nobody", "person_key", "candidate_person_count") == (None, 0)
    assert picked("export_due", "person_key", "candidate_person_count") == ("pA", 1)

    # Deadlines run from the day after receipt; overdue means open past the due date.
    as_of = dt.date(2026, 11, 20)
    for request_id, request_type, jurisdiction, *_rest in TRACKED[:-1]:
        row = tracked[request_id]
        received = row["received_at"].date()
        if jurisdiction == "EU":
            assert row["due_date"] == dt.date(received.year, received.month + 1, received.day)
        elif request_type == "erasure":
            assert row["due_date"] == received + dt.timedelta(days=30)
        else:
            days = {"rectification": 7}.get(request_type, 10)
            assert row["due_date"] == _working_days_after(received, days), request_id
        overdue = row["is_open"] and row["due_date"] < as_of
        assert row["is_overdue"] == overdue, request_id
        assert row["days_past_due"] == (
            max((as_of - row["due_date"]).days, 0) if row["is_open"] else None
        ), request_id
        late = row["closed_at"] is not None and row["closed_at"].date() > row["due_date"]
        assert row["is_closed_late"] == late, request_id
    # 2 November + 10 working days (4 November is a holiday): due 17 November, 3 days past
    assert picked("export_due", "due_date", "is_overdue", "days_past_due") == (
        dt.date(2026, 11, 17),
        True,
        3,
    )
    assert picked("build_late", "is_overdue", "is_closed_late") == (False, True)
    assert picked("unreadable", "is_overdue", "days_past_due") == (False, 0)
    assert picked("unverified", "is_overdue", "days_past_due") == (False, None)
    assert picked("shared", "is_overdue") == (True,)  # needs_review: its deadline runs


# --------------------------------------------------------------------------- RFM scores


def test_rfm_scores_are_quintiles_with_ties_broken_by_person_key(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "create table purchase_summary (person_key varchar, order_count bigint, "
        "revenue_rub decimal(18, 2), recency_days bigint)"
    )
    people: list[tuple[str, int, int | None, int]] = [
        # Ten people: two per quintile on every measure.
        (f"p{n:02d}", n, n * 100, 100 - n * 10)
        for n in range(10)
    ]
    people[9] = ("p09", 9, None, 10)  # no RUB revenue: scores as 0, the lowest
    con.executemany("insert into purchase_summary values (?, ?, ?, ?)", people)
    scores = {
        r[0]: r[1:]
        for r in con.execute(
            f"select person_key, rfm_recency_score, rfm_frequency_score, rfm_monetary_score "
            f"from ({_cte(PROFILE, 'rfm')})"
        ).fetchall()
    }
    assert scores["p00"] == (1, 1, 1)  # oldest order, fewest orders, least revenue
    assert scores["p08"] == (5, 5, 5)
    assert scores["p09"] == (5, 5, 1)
    for measure in range(3):
        assert sorted(s[measure] for s in scores.values()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # Ties (the same recency, orders and revenue) split by person_key, the same every build.
    con.execute("delete from purchase_summary")
    con.executemany(
        "insert into purchase_summary values (?, 1, 100, 30)",
        [(f"t{n}",) for n in reversed(range(5))],  # not in person_key order
    )
    tied = con.execute(
        f"select person_key, rfm_recency_score, rfm_frequency_score "
        f"from ({_cte(PROFILE, 'rfm')}) order by person_key"
    ).fetchall()
    assert tied == [(f"t{n}", n + 1, n + 1) for n in range(5)]
    # Tied on orders only, recency sorting them the other way: person_key still decides.
    con.execute("update purchase_summary set recency_days = 30 + cast(person_key[2:] as int)")
    tied = con.execute(
        f"select person_key, rfm_recency_score, rfm_frequency_score, rfm_monetary_score "
        f"from ({_cte(PROFILE, 'rfm')}) order by person_key"
    ).fetchall()
    assert tied == [(f"t{n}", 5 - n, n + 1, n + 1) for n in range(5)]


# --------------------------------------------------------------------------- identity_earliest

IDENTITY_TYPES = MACROS / "identity" / "identity_types.sql"
#: What duckdb__identity_earliest replaced (decision 101): the same order, kept as the reference.
EARLIEST_REFERENCE = "arg_min(value, (coalesce(seen_at, timestamp 'infinity'), value))"


def _earliest(con: duckdb.DuckDBPyConnection, expression: str) -> dict[int, str | None]:
    return dict(
        con.execute(f"select grp, {expression} from pairs group by grp order by grp").fetchall()
    )


def _load_pairs(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    con.execute("create or replace table pairs (grp integer, value varchar, seen_at timestamp)")
    if rows:
        con.executemany("insert into pairs values (?, ?, ?)", rows)


_EARLIEST = str(
    _jinja()
    .from_string(IDENTITY_TYPES.read_text(encoding="utf-8"))
    .module.duckdb__identity_earliest("value", "seen_at")  # type: ignore[attr-defined]
)
_moments = st.one_of(
    st.none(),
    st.sampled_from(["infinity", "-infinity"]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(str),
    # near each other, so that ties and neighbours are common
    st.integers(-3, 3).map(lambda n: str(dt.datetime(2026, 1, 1) + dt.timedelta(microseconds=n))),
)
_pair_rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.one_of(
            st.none(), st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6)
        ),
        _moments,
    ),
    max_size=40,
)


@settings(
    max_examples=int(os.environ.get("CDP_HYP_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=_pair_rows)
def test_identity_earliest_equals_arg_min_over_the_tuple(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]
) -> None:
    """The spillable spelling picks what arg_min over (time, value) picks: the earliest time (an
    unknown one and infinity last, minus infinity first), ties to the least value, a NULL value
    never; and what the plain rule picks, computed in Python."""
    _load_pairs(con, rows)
    got = _earliest(con, _EARLIEST)
    assert got == _earliest(con, EARLIEST_REFERENCE)

    def order(row: tuple[Any, ...]) -> tuple[Any, ...]:
        moment = row[2]
        if moment == "-infinity":
            return (0, dt.datetime.min, row[1])
        if moment is None or moment == "infinity":
            return (2, dt.datetime.min, row[1])
        return (1, dt.datetime.fromisoformat(moment), row[1])

    want: dict[int, str | None] = {}
    for grp in sorted({row[0] for row in rows}):
        candidates = [row for row in rows if row[0] == grp and row[1] is not None]
        want[grp] = min(candidates, key=order)[1] if candidates else None
    assert got == want


def test_identity_earliest_comparison_can_fail(con: duckdb.DuckDBPyConnection) -> None:
    """The comparison has teeth: the time as unpadded digits (9 after 10) picks the later row."""
    _load_pairs(
        con,
        [(0, "later", "1970-01-01 00:00:00.000010"), (0, "earlier", "1970-01-01 00:00:00.000009")],
    )
    weak = _EARLIEST.replace("lpad(", "(").replace(", 20, '0')", ")")
    assert weak != _EARLIEST
    assert _earliest(con, EARLIEST_REFERENCE) == _earliest(con, _EARLIEST) == {0: "earlier"}
    assert _earliest(con, weak) != {0: "earlier"}
