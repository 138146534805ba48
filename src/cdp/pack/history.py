"""The evidence history as pictures: inline SVG drawn here (no plotting library, no script).

One picture per question an auditor asks of the builds over time: consent coverage
per purpose, subject requests received / overdue / closed, destructions per data
category, and the outcome of each privacy rule. Every build of the evidence
record is one point (``<circle class="point">``) of every series
(``<g class="series" data-series=...>``) of every picture (``<svg class="history">``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdp import evidence
from cdp.pack.pages import esc, md_table, page, table

PALETTE = (
    "#2f6fb0",
    "#b3261e",
    "#1d7a36",
    "#a35f00",
    "#5b3fa0",
    "#00838f",
    "#8a6d00",
    "#c2185b",
    "#6b7f3a",
    "#455a64",
    "#7a0c9c",
    "#3e7cb1",
)
OUTCOME_COLOUR = {"pass": "#1d7a36", "warn": "#a35f00", "none": "#c8d1dc"}
FAIL_COLOUR = "#b3261e"

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 230, 30, 50


def build_label(entry: dict[str, Any]) -> str:
    """How a build is named on an axis: its as_of date, else its time."""
    return str(entry.get("as_of") or entry.get("built_at") or "?")[:10]


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: dict[str, list[float]],
    *,
    unit: str = "",
    y_max: float | None = None,
) -> str:
    """A line chart with one point per build and a legend on the right."""
    top = max([y_max or 0.0, *(v for values in series.values() for v in values), 1.0])
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / count)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="history" data-chart="{esc(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(title)}" font-family="system-ui,sans-serif" font-size="11">',
        f"<title>{esc(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f7f9fb" '
        'stroke="#c8d1dc"/>',
    ]
    for step in range(5):
        value = top * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#e1e6ec"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{value:.4g}{esc(unit)}</text>"
        )
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{x(i):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{esc(label)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
        'fill="#57606a">build (as_of)</text>'
    )
    for n, (label, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<g class="series" data-series="{esc(label)}">')
        if len(values) > 1:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for i, value in enumerate(values):
            parts.append(
                f'<circle class="point" cx="{x(i):.1f}" cy="{y(value):.1f}" r="4" '
                f'fill="{colour}"><title>{esc(label)}, {esc(labels[i])}: '
                f"{value:.4g}{esc(unit)}</title></circle>"
            )
        legend_y = TOP + 8 + 16 * n
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 14}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT + 30}" y="{legend_y + 1}">'
            f"{esc(label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def outcome_matrix(
    name: str, title: str, labels: Sequence[str], rows: dict[str, list[dict[str, int]]]
) -> str:
    """One row per privacy rule, one dot per build: green passed, amber warned, red failed."""
    row_h = 20
    left = 320
    col_w = max(60, min(120, (WIDTH - left - 20) // max(len(labels), 1)))
    height = TOP + row_h * len(rows) + 40
    width = left + col_w * len(labels) + 20
    parts = [
        f'<svg class="history" data-chart="{esc(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(title)}" font-family="system-ui,sans-serif" font-size="11">',
        f"<title>{esc(title)}</title>",
    ]
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{left + col_w * i + col_w / 2:.1f}" y="{TOP - 10}" text-anchor="middle">'
            f"{esc(label)}</text>"
        )
    for r, (rule, outcomes) in enumerate(rows.items()):
        cy = TOP + row_h * r + row_h / 2
        if r % 2:
            parts.append(
                f'<rect x="0" y="{cy - row_h / 2:.1f}" width="{width}" height="{row_h}" '
                'fill="#f7f9fb"/>'
            )
        parts.append(f'<g class="series" data-series="{esc(rule)}">')
        parts.append(f'<text x="{left - 10}" y="{cy + 4:.1f}" text-anchor="end">{esc(rule)}</text>')
        for i, counts in enumerate(outcomes):
            total = sum(counts.values())
            passed = counts.get("pass", 0)
            warned = counts.get("warn", 0)
            if total == 0:
                colour, text = OUTCOME_COLOUR["none"], "not run"
            elif passed == total:
                colour, text = OUTCOME_COLOUR["pass"], f"{passed}/{total} passed"
            elif passed + warned == total:
                colour, text = OUTCOME_COLOUR["warn"], f"{passed}/{total} passed, {warned} warned"
            else:
                failed = total - passed - warned
                colour, text = FAIL_COLOUR, f"{passed}/{total} passed, {failed} failed"
            parts.append(
                f'<circle class="point" cx="{left + col_w * i + col_w / 2:.1f}" cy="{cy:.1f}" '
                f'r="6" fill="{colour}"><title>{esc(rule)}, {esc(labels[i])}: {esc(text)}'
                "</title></circle>"
            )
        parts.append("</g>")
    legend_y = height - 12
    for n, (text, colour) in enumerate(
        (
            ("all passed", OUTCOME_COLOUR["pass"]),
            ("warned", OUTCOME_COLOUR["warn"]),
            ("failed", FAIL_COLOUR),
        )
    ):
        parts.append(
            f'<circle cx="{left + 110 * n}" cy="{legend_y - 4}" r="5" fill="{colour}"/>'
            f'<text x="{left + 110 * n + 10}" y="{legend_y}">{esc(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def charts(entries: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(name, heading, svg) for each picture, from the evidence entries in order."""
    labels = [build_label(e) for e in entries]

    purposes = sorted({c["purpose"] for e in entries for c in e.get("consent") or []})
    coverage: dict[str, list[float]] = {}
    for purpose in purposes:
        values = []
        for entry in entries:
            row = next((c for c in entry.get("consent") or [] if c["purpose"] == purpose), None)
            persons = int(row["persons"]) if row else 0
            values.append(
                round(100.0 * int(row["permitted"]) / persons, 1) if row and persons else 0.0
            )
        coverage[purpose] = values

    def request_total(entry: dict[str, Any], field: str) -> float:
        return float(sum(int(r[field]) for r in entry.get("requests") or []))

    requests = {
        field: [request_total(e, field) for e in entries]
        for field in ("received", "overdue", "closed")
    }

    categories = sorted({d["data_category"] for e in entries for d in e.get("destructions") or []})

    def destroyed(entry: dict[str, Any], category: str | None) -> float:
        return float(
            sum(
                int(d["rows"])
                for d in entry.get("destructions") or []
                if category is None or d["data_category"] == category
            )
        )

    destructions = {"all categories": [destroyed(e, None) for e in entries]}
    destructions.update({c: [destroyed(e, c) for e in entries] for c in categories})

    rules = sorted({t["rule"] for e in entries for t in e.get("privacy_tests", [])})
    outcomes = [evidence.rule_outcomes(e) for e in entries]
    matrix = {rule: [o.get(rule, {}) for o in outcomes] for rule in rules}

    return [
        (
            "consent",
            "Consent coverage per purpose (% of persons in the ledger permitted)",
            line_chart(
                "consent", "Consent coverage per purpose", labels, coverage, unit="%", y_max=100
            ),
        ),
        (
            "requests",
            "Subject requests: received, overdue, closed (all requests the build tracked)",
            line_chart("requests", "Subject requests received, overdue, closed", labels, requests),
        ),
        (
            "destructions",
            "Destructions per data category (rows destroyed in the raw zone, cumulative)",
            line_chart("destructions", "Rows destroyed per data category", labels, destructions),
        ),
        (
            "rules",
            "Test outcomes per privacy rule",
            outcome_matrix("rules", "Test outcomes per privacy rule", labels, matrix),
        ),
    ]


def history_page(entries: Sequence[dict[str, Any]], problems: Sequence[str]) -> tuple[str, str]:
    """The history page (HTML with inline SVG pictures) and its Markdown twin (the table)."""
    rows = []
    for entry in entries:
        v = evidence.verdict(entry)
        rows.append(
            (
                entry.get("seq"),
                entry.get("built_at"),
                entry.get("commit") or "unknown",
                entry.get("as_of"),
                entry.get("key_version"),
                f"{v.passed}/{v.tests} passed, {v.warned} warned, {v.failed} failed",
                str(entry.get("hash", ""))[:16],
            )
        )
    headers = ("Seq", "Built at", "Commit", "as_of", "Key", "Privacy tests", "Hash")
    status = (
        '<p class="ok">The evidence record verifies: no entry was edited or deleted.</p>'
        if not problems
        else '<p class="bad">The evidence record does NOT verify: '
        + esc("; ".join(problems))
        + "</p>"
    )
    body = [
        status,
        "<p>One point per build recorded in the evidence record (<code>cdp evidence show</code>); "
        "hover a point for its value.</p>",
    ]
    for _name, heading, svg in charts(entries) if entries else []:
        body.append(f"<h2>{esc(heading)}</h2><div style='overflow-x:auto'>{svg}</div>")
    body.append("<h2>Builds</h2>" + table(headers, rows))
    markdown = (
        "# Evidence history\n\n"
        + (
            "The record verifies.\n\n"
            if not problems
            else "NOT VERIFIED: " + "; ".join(problems) + "\n\n"
        )
        + md_table(headers, rows)
        + "\n"
    )
    return page("Evidence history", "".join(body)), markdown
