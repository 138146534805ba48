"""The auditor pack's pages: record of processing, privacy notice, lineage, summary.

Everything is generated from the project itself (seeds, manifest, compiled SQL,
the built databases), as plain HTML with inline CSS and SVG (no script, no
network) and Markdown twins for the documents people copy into other places.
"""

# ruff: noqa: RUF001  (the Russian notice: Cyrillic letters are meant)
from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp import catalogue as seeds_catalogue
from cdp.pack import lineage as lin
from cdp.pack.gate import Finding, label_name, personal_sources, zone_of
from cdp.pack.lineage import ColumnRef, ProjectLineage

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1b1f24;background:#fff;line-height:1.45}
h1{font-size:1.7rem;border-bottom:3px solid #2f6fb0;padding-bottom:.3rem}h2{margin-top:2rem;color:#24507e}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #c8d1dc;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#e8eff7}tr:nth-child(even) td{background:#f7f9fb}
nav{background:#24507e;padding:.6rem 1rem;border-radius:6px;margin-bottom:1.5rem}
nav a{color:#fff;margin-right:1.2rem;text-decoration:none;font-weight:600}
.ok{color:#1d7a36;font-weight:700}.bad{color:#b3261e;font-weight:700}.warn{color:#a35f00;font-weight:700}
.tag{display:inline-block;padding:0 .4rem;border-radius:4px;color:#fff;font-size:.8rem}
code{background:#eef2f6;padding:0 .2rem;border-radius:3px}
"""
NAV = [
    ("index.html", "Pack"),
    ("record_of_processing.html", "Record of processing"),
    ("privacy_notice_en.html", "Privacy notice (EN)"),
    ("privacy_notice_ru.html", "Уведомление (RU)"),
    ("lineage.html", "PII lineage"),
    ("compliance_summary.html", "Compliance summary"),
    ("history.html", "Evidence history"),
    ("privacy_gate.html", "Privacy gate"),
    ("dbt_docs/index.html", "dbt docs"),
]
COLOURS = {
    lin.PASSED: "#b3261e",
    lin.HASHED: "#7a0c9c",
    lin.PSEUDONYMISED: "#2f6fb0",
    lin.SEALED: "#5b3fa0",
    lin.GENERALISED: "#1d7a36",
    lin.DERIVED: "#6b7f3a",
    lin.AGGREGATED: "#8a6d00",
    lin.DROPPED: "#7d8590",
}
ZONE_FILL = {"raw": "#fde8e6", "vault": "#ece6f7", "warehouse": "#e6eef8", "published": "#e6f4ea"}


class PackError(Exception):
    """The pack cannot be generated as asked; the message says what to fix."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, lang: str = "en", prefix: str = "") -> str:
    links = "".join(f'<a href="{prefix}{href}">{esc(text)}</a>' for href, text in NAV)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<nav>{links}</nav><h1>{esc(title)}</h1>{body}</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, raw: bool = False) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def split(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


@dataclass
class Catalogue:
    """The purposes catalogue, retention per category, controller details, Russian texts."""

    purposes: list[dict[str, str]]
    categories: dict[str, dict[str, str]]
    controller: dict[str, dict[str, str]]
    russian: dict[tuple[str, str], str]

    REQUIRED_CONTROLLER = (
        "controller_name",
        "controller_address",
        "controller_contact",
        "dpo_contact",
        "storage_location",
        "transfers",
        "security_measures",
        "rights_contact",
        "withdraw_consent",
        "supervisory_authority",
    )

    @classmethod
    def load(cls, seeds: Path) -> Catalogue:
        def rows(name: str) -> list[dict[str, str]]:
            try:
                return seeds_catalogue.read_seed(name, seeds)
            except seeds_catalogue.CatalogueError as exc:
                raise PackError(str(exc)) from None

        purposes = rows("purposes.csv")
        categories = {row["data_category"]: row for row in rows("data_categories.csv")}
        controller = {row["field"]: row for row in rows("controller.csv")}
        russian = {
            (r["term_type"], r["term"]): r["text_ru"] for r in rows("notice_translations.csv")
        }
        catalogue = cls(purposes, categories, controller, russian)
        catalogue.validate()
        return catalogue

    def validate(self) -> None:
        problems: list[str] = []
        for code in self.REQUIRED_CONTROLLER:
            row = self.controller.get(code)
            if (
                row is None
                or not row.get("value_en", "").strip()
                or not row.get("value_ru", "").strip()
            ):
                problems.append(f"seeds/controller.csv: field {code} missing or empty")
        for purpose in self.purposes:
            code = purpose["purpose_code"]
            for required in (
                "purpose_name",
                "description",
                "legal_basis",
                "data_categories",
                "recipients",
                "legal_reference",
                "subject_categories",
            ):
                if not purpose.get(required, "").strip():
                    problems.append(f"seeds/purposes.csv: {code} has no {required}")
            for category in split(purpose.get("data_categories", "")):
                if category not in self.categories:
                    problems.append(f"seeds/purposes.csv: {code} names unknown category {category}")
            for term_type, term in self.terms(purpose):
                if not self.russian.get((term_type, term), "").strip():
                    problems.append(
                        f"seeds/notice_translations.csv: no Russian text for {term_type} {term!r}"
                    )
        if problems:
            raise PackError("the catalogue is incomplete:\n  " + "\n  ".join(problems))

    def terms(self, purpose: dict[str, str]) -> list[tuple[str, str]]:
        code = purpose["purpose_code"]
        result = [
            ("purpose_name", code),
            ("purpose_description", code),
            ("legal_basis", purpose["legal_basis"]),
        ]
        result += [("recipient", r) for r in split(purpose["recipients"])]
        result += [("subject_category", s) for s in split(purpose["subject_categories"])]
        result += [("data_category", c) for c in split(purpose["data_categories"])]
        return result

    def ru(self, term_type: str, term: str) -> str:
        return self.russian[(term_type, term)]

    def controller_text(self, field: str, lang: str = "en") -> str:
        return self.controller[field][f"value_{lang}"]

    def retention(self, category: str, lang: str = "en") -> str:
        row = self.categories[category]
        days = int(row["retention_days"])
        anchor = row["retention_anchor"]
        if lang == "ru":
            since = {
                "event_time": "с даты события",
                "last_activity": "с последней активности клиента",
                "consent_end": "после прекращения согласия",
            }.get(anchor, anchor)
            return f"{days} дн. {since}"
        since = {
            "event_time": "from the event",
            "last_activity": "from the customer's last activity",
            "consent_end": "after the consent ended",
        }.get(anchor, anchor)
        return f"{days} days {since}"


# --------------------------------------------------------------------------- record of processing

ROPA_HEADERS = (
    "Purpose (art. 30(1)(b))",
    "Legal basis",
    "Categories of data subjects (c)",
    "Categories of personal data (c)",
    "Recipients (d)",
    "Transfers to third countries (e)",
    "Erasure time limits (f)",
    "Models serving it",
)


def ropa_rows(catalogue: Catalogue, manifest: dict[str, Any]) -> list[list[str]]:
    serving: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model":
            continue
        meta = node.get("config", {}).get("meta") or {}
        purpose = meta.get("purpose")
        codes = [purpose] if isinstance(purpose, str) else list(purpose or [])
        # A long-format model (meta.purpose_column) serves every purpose whose catalogue
        # column meta.purposes_with is set, e.g. rpt_marketing_audiences: message_channels.
        column = meta.get("purposes_with")
        if meta.get("purpose_column") and isinstance(column, str):
            codes += [p["purpose_code"] for p in catalogue.purposes if split(p.get(column, ""))]
        for code in codes:
            serving.setdefault(str(code), []).append(node["name"])
    rows = []
    for purpose in catalogue.purposes:
        categories = split(purpose["data_categories"])
        rows.append(
            [
                f"{purpose['purpose_name']} ({purpose['purpose_code']}): {purpose['description']}",
                f"{purpose['legal_basis']} — {purpose['legal_reference']}",
                ", ".join(split(purpose["subject_categories"])),
                "; ".join(f"{c}: {catalogue.categories[c]['description']}" for c in categories),
                ", ".join(split(purpose["recipients"])),
                catalogue.controller_text("transfers"),
                "; ".join(f"{c}: {catalogue.retention(c)}" for c in categories),
                ", ".join(sorted(serving.get(purpose["purpose_code"], []))) or "—",
            ]
        )
    return rows


def record_of_processing(catalogue: Catalogue, manifest: dict[str, Any]) -> tuple[str, str]:
    controller = [
        ("Controller (art. 30(1)(a))", catalogue.controller_text("controller_name")),
        ("Address", catalogue.controller_text("controller_address")),
        ("Contact", catalogue.controller_text("controller_contact")),
        ("Data protection officer", catalogue.controller_text("dpo_contact")),
        (
            "Representative",
            catalogue.controller_text("representative")
            if "representative" in catalogue.controller
            else "—",
        ),
        ("Storage location (152-FZ art. 18 p. 5)", catalogue.controller_text("storage_location")),
        ("Security measures (art. 30(1)(g))", catalogue.controller_text("security_measures")),
    ]
    rows = ropa_rows(catalogue, manifest)
    retention = [
        [c, r["description"], catalogue.retention(c), r["retention_basis"], r["legal_reference"]]
        for c, r in catalogue.categories.items()
    ]
    body = (
        "<p>Generated from the purposes catalogue (<code>seeds/purposes.csv</code>), the retention "
        "catalogue (<code>seeds/data_categories.csv</code>), the controller details "
        "(<code>seeds/controller.csv</code>) and model metadata.</p>"
        + table(("Field", "Value"), controller)
        + "<h2>Processing activities</h2>"
        + table(ROPA_HEADERS, rows)
        + "<h2>Retention per data category</h2>"
        + table(("Category", "What", "Period", "Why", "Legal reference"), retention)
    )
    markdown = "\n\n".join(
        [
            "# Record of processing activities",
            md_table(("Field", "Value"), controller),
            "## Processing activities",
            md_table(ROPA_HEADERS, rows),
            "## Retention per data category",
            md_table(("Category", "What", "Period", "Why", "Legal reference"), retention),
        ]
    )
    return page("Record of processing activities", body), markdown + "\n"


# --------------------------------------------------------------------------- privacy notice

NOTICE: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Privacy notice",
        "intro": "{controller} processes your personal data only for the purposes below. "
        "This notice is generated from the same catalogue the data warehouse enforces, so it "
        "always says what the warehouse actually does.",
        "headers": (
            "What for",
            "Which data",
            "Legal basis",
            "How long",
            "Who receives it",
            "Consent needed",
        ),
        "yes": "yes — you can withdraw it at any time",
        "no": "no",
        "rights": "Your rights",
        "rights_list": [
            ("Access", "get a copy of everything we hold on you, in machine-readable JSON"),
            ("Rectification", "have wrong data corrected (within 7 working days)"),
            ("Erasure", "have your data destroyed, except records the law obliges us to keep"),
            ("Restriction", "have your data kept but not processed"),
            ("Objection", "stop processing based on legitimate interest and all direct marketing"),
            ("Portability", "receive your data in a machine-readable format"),
            ("Withdraw consent", "at any time, without affecting earlier processing"),
        ],
        "withdraw": "How to withdraw consent",
        "exercise": "How to exercise your rights",
        "where": "Where your data is stored",
        "transfers": "Transfers abroad",
        "contact": "Contact",
        "authority": "Complaints",
    },
    "ru": {
        "title": "Политика обработки персональных данных",
        "intro": "{controller} обрабатывает ваши персональные данные только для целей, перечисленных "
        "ниже. Этот текст создаётся из того же каталога целей, который применяет хранилище данных, "
        "поэтому он всегда соответствует фактической обработке.",
        "headers": (
            "Цель",
            "Какие данные",
            "Правовое основание",
            "Срок хранения",
            "Получатели",
            "Нужно согласие",
        ),
        "yes": "да — его можно отозвать в любой момент",
        "no": "нет",
        "rights": "Ваши права",
        "rights_list": [
            ("Доступ", "получить сведения обо всех ваших данных в машиночитаемом виде (JSON)"),
            ("Уточнение", "исправить неточные данные (в течение 7 рабочих дней)"),
            (
                "Уничтожение",
                "уничтожить ваши данные, кроме сведений, которые мы обязаны хранить по закону",
            ),
            ("Блокирование", "приостановить обработку ваших данных с их сохранением"),
            (
                "Возражение",
                "прекратить обработку для рекламных рассылок и на основании законного интереса",
            ),
            ("Переносимость", "получить ваши данные в машиночитаемом формате"),
            ("Отзыв согласия", "в любой момент; обработка до отзыва остаётся законной"),
        ],
        "withdraw": "Как отозвать согласие",
        "exercise": "Как воспользоваться правами",
        "where": "Где хранятся данные",
        "transfers": "Трансграничная передача",
        "contact": "Контакты",
        "authority": "Жалобы",
    },
}


def notice_rows(catalogue: Catalogue, lang: str) -> list[list[str]]:
    text = NOTICE[lang]
    rows = []
    for purpose in catalogue.purposes:
        code = purpose["purpose_code"]
        categories = split(purpose["data_categories"])
        if lang == "ru":
            name = (
                f"{catalogue.ru('purpose_name', code)}: {catalogue.ru('purpose_description', code)}"
            )
            data = "; ".join(catalogue.ru("data_category", c) for c in categories)
            basis = f"{catalogue.ru('legal_basis', purpose['legal_basis'])} ({purpose['legal_reference']})"
            recipients = ", ".join(
                catalogue.ru("recipient", r) for r in split(purpose["recipients"])
            )
        else:
            name = f"{purpose['purpose_name']}: {purpose['description']}"
            data = "; ".join(catalogue.categories[c]["description"] for c in categories)
            basis = f"{purpose['legal_basis'].replace('_', ' ')} ({purpose['legal_reference']})"
            recipients = ", ".join(split(purpose["recipients"]))
        period = "; ".join(catalogue.retention(c, lang) for c in categories)
        consent = text["yes"] if purpose["is_consent_required"].lower() == "true" else text["no"]
        rows.append([name, data, basis, period, recipients, consent])
    return rows


def privacy_notice(catalogue: Catalogue, lang: str) -> tuple[str, str]:
    text = NOTICE[lang]
    intro = str(text["intro"]).format(controller=catalogue.controller_text("controller_name", lang))
    rows = notice_rows(catalogue, lang)
    sections = [
        (str(text["withdraw"]), catalogue.controller_text("withdraw_consent", lang)),
        (str(text["exercise"]), catalogue.controller_text("rights_contact", lang)),
        (str(text["where"]), catalogue.controller_text("storage_location", lang)),
        (str(text["transfers"]), catalogue.controller_text("transfers", lang)),
        (
            str(text["contact"]),
            f"{catalogue.controller_text('controller_name', lang)}, "
            f"{catalogue.controller_text('controller_address', lang)}; "
            f"{catalogue.controller_text('controller_contact', lang)}; "
            f"{catalogue.controller_text('dpo_contact', lang)}",
        ),
        (str(text["authority"]), catalogue.controller_text("supervisory_authority", lang)),
    ]
    rights = list(text["rights_list"])
    body = f"<p>{esc(intro)}</p>" + table(text["headers"], rows)
    body += f"<h2>{esc(text['rights'])}</h2><ul>"
    body += "".join(f"<li><b>{esc(r)}</b>: {esc(d)}</li>" for r, d in rights) + "</ul>"
    body += "".join(f"<h2>{esc(h)}</h2><p>{esc(t)}</p>" for h, t in sections)
    markdown = [
        f"# {text['title']}",
        intro,
        md_table(text["headers"], rows),
        f"## {text['rights']}",
        "\n".join(f"- **{r}**: {d}" for r, d in rights),
    ]
    markdown += [f"## {h}\n\n{t}" for h, t in sections]
    return page(str(text["title"]), body, lang=lang), "\n\n".join(markdown) + "\n"


# --------------------------------------------------------------------------- lineage


@dataclass
class LineageRow:
    source: str
    pii: str
    target: str
    zone: str
    label: str
    path: str


def lineage_rows(project: ProjectLineage) -> list[LineageRow]:
    manifest = project.manifest
    rows: list[LineageRow] = []
    for source, pii, whole_only in personal_sources(manifest):
        reached = project.reach(source, whole_only=whole_only)
        name = label_name(manifest, source)
        if not reached:
            rows.append(
                LineageRow(name, pii, "— (never leaves the raw zone)", "raw", lin.DROPPED, "")
            )
            continue
        for target, reach in sorted(reached.items()):
            node = manifest["nodes"][target.relation]
            rows.append(
                LineageRow(
                    name,
                    pii,
                    label_name(manifest, target),
                    zone_of(node),
                    reach.label,
                    " → ".join(label_name(manifest, step) for step in reach.path[1:-1]),
                )
            )
    return rows


def _tag(label: str) -> str:
    return f'<span class="tag" style="background:{COLOURS.get(label, "#555")}">{esc(label)}</span>'


def relation_graph(project: ProjectLineage) -> str:
    """A layered SVG of relations holding personal data, edges coloured by transformation."""
    manifest = project.manifest
    edges: dict[tuple[str, str], str] = {}
    for source, _pii, whole_only in personal_sources(manifest):
        reached = project.reach(source, whole_only=whole_only)
        for reach in reached.values():
            for upstream, downstream in zip(reach.path, reach.path[1:], strict=False):
                if upstream.relation == downstream.relation:
                    continue
                # Coloured by what the personal value is by then (cumulative), not by the hop.
                label = reached[downstream].label if downstream in reached else reach.label
                key = (upstream.relation, downstream.relation)
                edges[key] = lin.weakest(edges[key], label) if key in edges else label
    nodes = sorted({n for edge in edges for n in edge})
    if not nodes:
        return "<p>No personal data flows.</p>"
    layer: dict[str, int] = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for a, b in edges:
            if layer[b] < layer[a] + 1:
                layer[b] = layer[a] + 1
                changed = True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(layer[node], []).append(node)
    position: dict[str, float] = {}
    for depth in sorted(columns):

        def centre(node: str) -> float:
            parents = [position[a] for (a, b) in edges if b == node and a in position]
            return sum(parents) / len(parents) if parents else 0.0

        columns[depth].sort(key=lambda n: (centre(n), n))
        for index, node in enumerate(columns[depth]):
            position[node] = float(index)
    box_w, box_h, gap_x, gap_y = 230, 26, 90, 12
    height = max(len(v) for v in columns.values()) * (box_h + gap_y) + 60
    width = (max(columns) + 1) * (box_w + gap_x) + 20

    def xy(node: str) -> tuple[float, float]:
        return 10 + layer[node] * (box_w + gap_x), 40 + position[node] * (box_h + gap_y)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    legend_x = 10
    for label, colour in COLOURS.items():
        parts.append(f'<rect x="{legend_x}" y="8" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 16}" y="18">{esc(label)}</text>')
        legend_x += 16 + 8 * len(label) + 14
    for (a, b), label in sorted(edges.items()):
        ax, ay = xy(a)
        bx, by = xy(b)
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" '
            f'stroke="{COLOURS.get(label, "#555")}" stroke-width="1.6" opacity="0.75">'
            f"<title>{esc(label_name(manifest, ColumnRef(a, '')))} → "
            f"{esc(label_name(manifest, ColumnRef(b, '')))}: {esc(label)}</title></path>"
        )
    for node in nodes:
        x, y = xy(node)
        entry = manifest["nodes"].get(node) or manifest["sources"].get(node) or {}
        zone = zone_of(entry) if entry else "raw"
        name = label_name(manifest, ColumnRef(node, "")).rstrip(".")
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" '
            f'fill="{ZONE_FILL.get(zone, "#eee")}" stroke="#5a6b7d"/>'
            f'<text x="{x + 6}" y="{y + 17}">{esc(name[:36])}<title>{esc(name)} ({zone})</title></text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lineage_page(project: ProjectLineage, svg: str) -> tuple[str, str]:
    rows = lineage_rows(project)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    intro = (
        "<p>Computed from the compiled SQL of every model with sqlglot (not from the declarations): "
        "for every source column classified as personal, every column it reaches and what is done "
        "to it on the way. Window partitions and filters carry no value and are not lineage; "
        "a lookup in a seed (city → region) is a generalisation. "
        f"{len(rows)} flows: "
        + ", ".join(f"{_tag(k)} {v}" for k, v in sorted(counts.items()))
        + '. The picture: <a href="lineage.svg">lineage.svg</a>; zones: raw (red), vault (violet), '
        "warehouse (blue), published (green).</p>"
    )
    table_rows = [
        [esc(r.source), esc(r.pii), esc(r.target), esc(r.zone), _tag(r.label), esc(r.path)]
        for r in rows
    ]
    body = (
        intro
        + f'<div id="graph" style="overflow-x:auto">{svg}</div>'
        + "<h2>Column flows</h2>"
        + table(
            ("Source column", "pii", "Reaches", "Zone", "Transformation", "Via"),
            table_rows,
            raw=True,
        )
    )
    markdown = "# PII lineage\n\n" + md_table(
        ("Source column", "pii", "Reaches", "Zone", "Transformation", "Via"),
        [[r.source, r.pii, r.target, r.zone, r.label, r.path] for r in rows],
    )
    return page("PII lineage (computed from compiled SQL)", body), markdown + "\n"


def gate_page(findings: Sequence[Finding], report_text: str) -> str:
    failed = [f for f in findings if not f.warning]
    status = (
        '<p class="ok">PASSED</p>' if not failed else f'<p class="bad">FAILED: {len(failed)}</p>'
    )
    rows = [
        [
            ("warning" if f.warning else "FAIL"),
            f.rule,
            f"{f.model}.{f.column}",
            f.file,
            f.message,
            " → ".join(f.path),
            f.fix,
        ]
        for f in findings
    ]
    body = status + table(("", "Rule", "Column", "File", "What", "Path", "Fix"), rows)
    body += f"<h2>Report</h2><pre>{esc(report_text)}</pre>"
    return page("Privacy gate", body)
