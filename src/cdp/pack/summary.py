"""The compliance summary: read from the built databases (read-only) and run_results.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cdp.pack.pages import Catalogue, esc, md_table, page, table

# Working days to answer, per request type (152-FZ art. 14, 20, 21).
DEADLINE_WORKING_DAYS = {"rectification": 7}
DEFAULT_WORKING_DAYS = 10


def _query(db: Path, sql: str) -> list[tuple[Any, ...]] | str:
    if not db.is_file():
        return f"not available: {db.name} does not exist"
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        return f"not available: {type(exc).__name__}"
    try:
        return [tuple(row) for row in con.execute(sql).fetchall()]
    except duckdb.Error as exc:
        return f"not available: {str(exc).splitlines()[0][:160]}"
    finally:
        con.close()


def _section(
    title: str, headers: Sequence[str], rows: list[tuple[Any, ...]] | str
) -> tuple[str, str]:
    if isinstance(rows, str):
        return f'<h2>{esc(title)}</h2><p class="warn">{esc(rows)}</p>', f"## {title}\n\n{rows}"
    return (
        f"<h2>{esc(title)}</h2>" + table(headers, rows),
        f"## {title}\n\n" + md_table(headers, rows),
    )


def due_date(received: date, working_days: int) -> date:
    day = received
    left = working_days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def _requests(warehouse: Path) -> list[tuple[Any, ...]] | str:
    rows = _query(
        warehouse,
        "select request_type, received_at::date, (select max(as_of)::date from "
        "intermediate.int_consent__person_purposes) from staging.stg_privacy__subject_requests",
    )
    if isinstance(rows, str):
        return rows
    summary: dict[str, list[Any]] = {}
    for request_type, received, as_of in rows:
        entry = summary.setdefault(str(request_type), [0, 0, received, received])
        entry[0] += 1
        days = DEADLINE_WORKING_DAYS.get(str(request_type), DEFAULT_WORKING_DAYS)
        if as_of is not None and due_date(received, days) < as_of:
            entry[1] += 1
        entry[2] = min(entry[2], received)
        entry[3] = max(entry[3], received)
    return [(k, *v) for k, v in sorted(summary.items())]


def test_results(target: Path) -> tuple[list[tuple[Any, ...]], dict[str, list[str]]]:
    file = target / "run_results.json"
    if not file.is_file():
        return [], {}
    results = json.loads(file.read_text(encoding="utf-8"))
    counts: dict[tuple[str, str], int] = {}
    retention: dict[str, list[str]] = {}
    for result in results.get("results", []):
        kind = str(result["unique_id"]).split(".", 1)[0]
        key = (kind, str(result["status"]))
        counts[key] = counts.get(key, 0) + 1
        if kind == "test" and "within_retention" in result["unique_id"]:
            retention.setdefault(str(result["status"]), []).append(result["unique_id"])
    rows = [(k, s, n) for (k, s), n in sorted(counts.items())]
    return rows, retention


def compliance_summary(
    catalogue: Catalogue,
    manifest: dict[str, Any],
    target: Path,
    warehouse: Path,
    raw: Path,
    vault: Path,
) -> tuple[str, str]:
    parts: list[tuple[str, str]] = []
    coverage = _query(
        warehouse,
        "select purpose_code, count(distinct person_key) as persons, "
        "count(distinct person_key) filter (where is_permitted) as permitted, "
        "round(100.0 * count(distinct person_key) filter (where is_permitted) "
        "/ nullif(count(distinct person_key), 0), 1) as pct "
        "from intermediate.int_consent__person_purposes group by 1 order by 1",
    )
    if not isinstance(coverage, str):
        known = {row[0] for row in coverage}
        coverage += [
            (p["purpose_code"], 0, 0, None)
            for p in catalogue.purposes
            if p["purpose_code"] not in known
        ]
    parts.append(
        _section(
            "Consent coverage per purpose (persons in the consent ledger)",
            ("Purpose", "Persons", "Permitted now", "%"),
            coverage,
        )
    )
    runs, retention_tests = test_results(target)
    by_category: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        meta = node.get("config", {}).get("meta") or {}
        category = meta.get("data_category")
        if node.get("resource_type") == "model" and category:
            by_category.setdefault(str(category), []).append(node["name"])
    status_of = {uid: status for status, uids in retention_tests.items() for uid in uids}
    retention_rows = []
    for category in catalogue.categories:
        models = sorted(by_category.get(category, []))
        tests = [s for uid, s in status_of.items() if any(m in uid for m in models)]
        verdict = (
            "no model"
            if not models
            else (
                "fail" if any(s != "pass" for s in tests) else ("pass" if tests else "not tested")
            )
        )
        retention_rows.append(
            (category, catalogue.retention(category), ", ".join(models) or "—", verdict)
        )
    parts.append(
        _section(
            "Retention status per data category (test within_retention)",
            ("Category", "Window", "Models", "Status"),
            retention_rows,
        )
    )
    requests = _requests(warehouse)
    parts.append(
        _section(
            "Subject requests (open: the landing contract has no closing date yet; due: 10 working "
            "days, rectification 7; overdue against the build's as_of)",
            ("Type", "Requests", "Overdue", "First received", "Last received"),
            requests,
        )
    )
    destruction = _query(
        raw,
        "select data_category, reason, method, count(*) as records, sum(row_count) as rows_destroyed, "
        "max(destroyed_at) from audit.destruction_log group by all order by 1, 2",
    )
    if isinstance(destruction, str) and "does not exist" in destruction:
        destruction = []
    parts.append(
        _section(
            "Destruction log (raw zone, audit.destruction_log)",
            ("Category", "Reason", "Method", "Records", "Rows", "Last"),
            destruction,
        )
    )
    reid = _query(
        vault,
        "select action, outcome, count(*), max(logged_at) from main.reidentification_log "
        "group by all order by 1, 2",
    )
    if isinstance(reid, str) and "does not exist" in reid:
        reid = []
    parts.append(
        _section("Re-identification log (vault)", ("Action", "Outcome", "Lookups", "Last"), reid)
    )
    parts.append(
        _section(
            "Results of the last build (run_results.json)",
            ("Kind", "Status", "Count"),
            runs or "no run_results.json in the target",
        )
    )
    body = "".join(html_part for html_part, _md in parts)
    markdown = "# Compliance summary\n\n" + "\n\n".join(md for _h, md in parts) + "\n"
    return page("Compliance summary", body), markdown
