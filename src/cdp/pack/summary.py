"""The compliance summary: from the build's evidence entry and the built databases (read-only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from cdp.pack.pages import Catalogue, esc, md_table, page, table


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


# Per request type and status: the build's own tracking (due dates, closures, review reasons).
REQUESTS_SQL = """
select
    request_type,
    request_status,
    coalesce(review_reason, '') as review_reason,
    count(*) as requests,
    count(*) filter (where is_overdue) as overdue,
    min(received_at)::date as first_received,
    max(received_at)::date as last_received
from intermediate.int_rights__request_tracking
group by all
order by request_type, request_status, review_reason
"""


def requests(warehouse: Path) -> list[tuple[Any, ...]] | str:
    """Subject requests per type, status and review reason, as the build tracked them.

    Read from ``int_rights__request_tracking`` (decision 29 for deadlines and closures,
    51 for requests that need review), so the summary and the overdue warning count the
    same requests: a request naming nobody is open, never closed, and overdue when due.
    """
    return _query(warehouse, REQUESTS_SQL)


FAILING = frozenset({"fail", "error"})


def retention_status(catalogue: Catalogue, entry: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per data category: window, tested models, status, failing rows, untested models and why.

    From the build's evidence only: the within_retention tests it ran (with the categories
    each covers) and the models it found holding each category. Status: ``fail`` (a test
    failed or errored), ``warn``, ``pass``, ``not run`` (skipped), ``not tested`` (no test);
    ``no model`` when nothing in the warehouse holds the category. A tested model that did
    not pass is named with its status.
    """
    tests = [t for t in entry.get("privacy_tests", []) if t["rule"] == "within_retention"]
    holders = entry.get("retention_holders") or {}
    rows: list[tuple[str, ...]] = []
    for category, spec in catalogue.categories.items():
        covering = [t for t in tests if category in (t.get("categories") or [])]
        statuses = {str(t["status"]) for t in covering}
        tested = sorted({str(t["model"]) for t in covering})
        by_model: dict[str, set[str]] = {}
        for test in covering:
            by_model.setdefault(str(test["model"]), set()).add(str(test["status"]))
        shown = [
            m + ("" if by_model[m] == {"pass"} else f" ({', '.join(sorted(by_model[m]))})")
            for m in tested
        ]
        untested = sorted(set(holders.get(category, [])) - set(tested))
        if statuses & FAILING:
            status = "fail"
        elif "skipped" in statuses:
            status = "not run"
        elif "warn" in statuses:
            status = "warn"
        elif covering:
            status = "pass"
        else:
            status = "not tested" if holders.get(category) else "no model"
        reason = (spec.get("untested_reason") or "").strip()
        declared = {m for m in (spec.get("untested_models") or "").split(";") if m}
        if untested and not set(untested) <= declared:
            why = "NO REASON GIVEN for " + ", ".join(sorted(set(untested) - declared))
        elif untested or not covering:
            why = (", ".join(untested) + ": " if untested else "") + (reason or "NO REASON GIVEN")
        else:
            why = "—"
        failing = sum(int(t.get("failures") or 0) for t in covering)
        rows.append(
            (
                category,
                catalogue.retention(category),
                ", ".join(shown) or "—",
                status,
                str(failing),
                why,
            )
        )
    return rows


def compliance_summary(
    catalogue: Catalogue,
    entry: dict[str, Any] | None,
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
    parts.append(
        _section(
            "Retention status per data category (tests within_retention of the build)",
            (
                "Category",
                "Window",
                "Models tested",
                "Status",
                "Rows past the window",
                "Untested, and why",
            ),
            retention_status(catalogue, entry) if entry else "no build evidence recorded",
        )
    )
    parts.append(
        _section(
            "Subject requests (int_rights__request_tracking: legal due dates, closures; "
            "needs_review: the identifier names no one person, never executed, deadline running; "
            "overdue against the build's as_of)",
            (
                "Type",
                "Status",
                "Review reason",
                "Requests",
                "Overdue",
                "First received",
                "Last received",
            ),
            requests(warehouse),
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
            "Results of the build (its run_results, kept in the evidence record)",
            ("Kind", "Status", "Count"),
            [(r["kind"], r["status"], r["count"]) for r in entry["results"]]
            if entry
            else "no build evidence recorded",
        )
    )
    body = "".join(html_part for html_part, _md in parts)
    markdown = "# Compliance summary\n\n" + "\n\n".join(md for _h, md in parts) + "\n"
    return page("Compliance summary", body), markdown
