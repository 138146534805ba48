"""The auditor pack: generated from the built project, opened in a real headless chromium."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from cdp import evidence
from cdp.pack import build, lineage, pages
from cdp.pack.lineage import ColumnRef
from conftest import HISTORY_AS_OF, ROOT, Evidenced, environment, run_dbt

ARTIFACTS = ROOT / "artifacts" / "pack"
PAGES = [
    "index.html",
    "lineage.html",
    "lineage.svg",
    "record_of_processing.html",
    "privacy_notice_en.html",
    "privacy_notice_ru.html",
    "compliance_summary.html",
    "history.html",
    "privacy_gate.html",
    "dbt_docs/index.html",
]


@pytest.fixture(scope="module")
def documented(evidenced: Evidenced, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the last build's target dir, documented there (the build's own stays as built)."""
    target = tmp_path_factory.mktemp("documented") / "target"
    shutil.copytree(evidenced.target, target)
    result = run_dbt(
        ("docs", "generate", "--static", "--select", "fqn:*"),
        evidenced.workspace.env,
        target.parent,
    )
    assert result.success, result.output[-3000:]
    return target


@pytest.fixture(scope="module")
def pack(evidenced: Evidenced, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cdp pack` as a user runs it: docs generated in a dir of its own, the build's target untouched."""
    out = tmp_path_factory.mktemp("pack")
    results = evidenced.target / "run_results.json"
    before = (results.read_bytes(), results.stat().st_mtime_ns)
    listing = sorted(p.name for p in evidenced.target.iterdir())
    with environment(evidenced.workspace.env):
        code = build.main(["--out", str(out)])
    assert code == 0, "the privacy gate failed"
    assert (results.read_bytes(), results.stat().st_mtime_ns) == before
    assert sorted(p.name for p in evidenced.target.iterdir()) == listing
    # target/ holds the analytics stage's results; the kept copy is all three stages'
    own = json.loads(results.read_text(encoding="utf-8"))
    merged = json.loads(evidenced.run_results[-1].read_text(encoding="utf-8"))
    assert own["metadata"]["invocation_id"] in merged["metadata"]["invocation_id"].split(",")
    return out


def busy_rows(file: Path) -> float:
    """Share of image rows with content (a blank page has none), read from the PNG's filtered rows.

    Chromium writes 8-bit RGB(A), non-interlaced. After PNG filtering a uniform row is all zero
    (Sub, Up, Average, Paeth) or one repeated value (None); a row crossing text or a box is not.
    """
    data = file.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{file} is not a PNG"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(
        height, width * channels + 1
    )
    filters, pixels = rows[:, 0], rows[:, 1 + channels :]
    filtered_busy = np.count_nonzero(pixels, axis=1) > 2 * channels
    plain_busy = (pixels != pixels[:, :1]).sum(axis=1) > 2 * channels
    busy = np.where(filters == 0, plain_busy, filtered_busy)
    return float(busy.mean())


def screenshot(url: str, file: Path, tmp: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    profile = tmp / f"profile-{file.stem}"
    profile.mkdir()
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--hide-scrollbars",
            f"--screenshot={file}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp)},
    )


@pytest.mark.dbt
@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_in_headless_chromium(pack: Path, name: str, tmp_path: Path) -> None:
    file = tmp_path / (name.replace("/", "_").replace(".", "_") + ".png")
    screenshot((pack / name).as_uri(), file, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, ARTIFACTS / file.name)
    busy = busy_rows(file)
    assert busy > 0.15, f"{name}: only {busy:.1%} of the rows have content, the page looks blank"


@pytest.mark.dbt
def test_pack_is_offline_and_linked(pack: Path) -> None:
    for file in pack.glob("*.html"):
        text = file.read_text(encoding="utf-8")
        assert "<script" not in text and "http://" not in text.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        ), f"{file.name} loads something"
        for href, _ in pages.NAV:
            assert (pack / href).is_file(), href
    assert "<svg" in (pack / "lineage.html").read_text(encoding="utf-8")


def _md_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header_start}"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.mark.dbt
def test_record_and_notices_list_every_purpose_with_every_field(pack: Path) -> None:
    with (ROOT / "seeds" / "purposes.csv").open(encoding="utf-8") as handle:
        purposes = list(csv.DictReader(handle))
    assert len(purposes) >= 10
    ropa = (pack / "record_of_processing.md").read_text(encoding="utf-8")
    rows = _md_rows(ropa, "Purpose (art. 30(1)(b))")
    assert len(rows) == len(purposes)
    for purpose, row in zip(purposes, rows, strict=True):
        assert f"({purpose['purpose_code']})" in row[0]
        assert all(cell and cell != "—" for cell in row[:7]), row  # art. 30(1)(b)-(f) filled
    controller = _md_rows(ropa, "Field")
    assert {r[0] for r in controller} >= {
        "Controller (art. 30(1)(a))",
        "Storage location (152-FZ art. 18 p. 5)",
        "Security measures (art. 30(1)(g))",
    }
    assert all(r[1] for r in controller)
    assert "Russian Federation" in ropa
    for lang, head in (("en", "What for"), ("ru", "Цель")):
        notice = (pack / f"privacy_notice_{lang}.md").read_text(encoding="utf-8")
        rows = _md_rows(notice, head)
        assert len(rows) == len(purposes)
        assert all(all(cell for cell in row) for row in rows), rows
        for section in ("withdraw", "exercise", "where"):
            assert f"## {pages.NOTICE[lang][section]}" in notice
    ru = (pack / "privacy_notice_ru.md").read_text(encoding="utf-8")
    assert "Исполнение заказов" in ru and "Согласие субъекта персональных данных" in ru


def test_a_purpose_without_russian_text_stops_the_pack(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    with (seeds / "purposes.csv").open("a", encoding="utf-8") as handle:
        handle.write(
            "loyalty,Loyalty programme,Points.,consent,true,purchase_history,"
            "internal marketing team,GDPR art. 6(1)(a),,customers\n"
        )
    with pytest.raises(pages.PackError, match="no Russian text for purpose_name 'loyalty'"):
        pages.Catalogue.load(seeds)


@pytest.mark.dbt
def test_lineage_is_computed_from_the_compiled_sql(documented: Path) -> None:
    manifest, catalog = lineage.load(documented)
    project = lineage.project_lineage(documented, manifest, catalog)
    assert not [m for m in project.models.values() if m.error]
    email = project.reach(ColumnRef("source.cdp.crm.customers", "email"))
    triaged = "model.cdp.stg_crm__customers_triaged"
    assert email[ColumnRef(triaged, "email_key")].label == lineage.PSEUDONYMISED
    assert email[ColumnRef("model.cdp.vault_identifiers", "sealed_value")].label == lineage.SEALED
    city = project.reach(ColumnRef("source.cdp.crm.customers", "city"))
    assert city[ColumnRef(triaged, "region")].label == lineage.GENERALISED
    birth = project.reach(ColumnRef("source.cdp.crm.customers", "birth_date"))
    assert birth[ColumnRef(triaged, "birth_year")].label == lineage.GENERALISED
    ip = project.reach(ColumnRef("source.cdp.web.events", "ip_address"))
    assert ip[ColumnRef("model.cdp.stg_web__events", "ip_prefix")].label == lineage.GENERALISED
    assert {r.label for r in ip.values()} <= {lineage.GENERALISED, lineage.DERIVED}
    for dropped in ("address", "passport_number", "postal_code"):
        assert project.reach(ColumnRef("source.cdp.crm.customers", dropped)) == {}


@pytest.mark.parametrize(
    ("expression", "label"),
    [
        ("email", lineage.PASSED),
        ("lower(trim(email))", lineage.PASSED),
        ("max(email)", lineage.PASSED),
        ("md5(email)", lineage.HASHED),
        ("sha256(lower(email))", lineage.HASHED),
        ("cdp_pseudonym_identity('email', email)", lineage.PSEUDONYMISED),
        ("count(distinct email)", lineage.AGGREGATED),
        ("count(distinct cdp_pseudonym_identity('email', email))", lineage.AGGREGATED),
        ("split_part(email, '@', 2)", lineage.GENERALISED),
        ("email is not null", lineage.DERIVED),
        ("case when email like '%@x.ru' then 'x' end", lineage.DERIVED),
        ("case when email <> '' then email end", lineage.PASSED),
    ],
)
def test_transformations_are_classified(expression: str, label: str) -> None:
    sql = f'with s as (select * from "raw"."crm"."customers") select {expression} as out from s'
    schema = {"raw": {"crm": {"customers": {"email": "varchar", "customer_id": "varchar"}}}}
    model = lineage.model_lineage(
        "model.x", sql, schema, {"raw.crm.customers": "source.cdp.crm.customers"}
    )
    assert model.error is None
    assert model.columns["out"] == {ColumnRef("source.cdp.crm.customers", "email"): label}


@pytest.mark.dbt
def test_summary_retention_is_the_builds_own_outcome(pack: Path, evidenced: Evidenced) -> None:
    """Each category's status, recomputed here from the last build's run_results and manifest."""
    run = json.loads(evidenced.run_results[-1].read_text(encoding="utf-8"))
    manifest = json.loads((evidenced.target / "manifest.json").read_text(encoding="utf-8"))
    nodes = manifest["nodes"]
    con = duckdb.connect(str(evidenced.workspace.warehouse_db), read_only=True)
    statuses: dict[str, set[str]] = {}
    try:
        for result in run["results"]:
            node = nodes.get(result["unique_id"], {})
            if (node.get("test_metadata") or {}).get("name") != "within_retention":
                continue
            model = nodes[node["attached_node"]]
            meta = model["config"]["meta"]
            if meta.get("data_category"):
                categories = {meta["data_category"]}
            else:
                column = meta["data_category_column"]
                categories = {
                    r[0]
                    for r in con.execute(
                        f"select distinct {column} from {model['relation_name']}"
                    ).fetchall()
                }
            for category in categories:
                statuses.setdefault(category, set()).add(result["status"])
    finally:
        con.close()
    expected = {
        c: "fail" if s & {"fail", "error"} else "warn" if "warn" in s else "pass"
        for c, s in statuses.items()
    }
    rows = _md_rows((pack / "compliance_summary.md").read_text(encoding="utf-8"), "Category")
    shown = {row[0]: row for row in rows}
    catalogue = pages.Catalogue.load(ROOT / "seeds")
    assert set(shown) == set(catalogue.categories)
    for category, row in shown.items():
        assert row[3] == expected.get(category, "no model"), row
        assert "not tested" not in row[3] and "NO REASON" not in row[5], row
        if row[3] == "no model":
            assert catalogue.categories[category]["untested_reason"] in row[5]
    # The staging tables hold expired raw rows until the purge: before it they warn, after it
    # (the third build) they pass; the person-level models passed all along.
    assert expected["site_activity"] == "pass"
    first = evidence.read_entries(evidenced.folder)[0]
    assert {
        t["status"]
        for t in first["privacy_tests"]
        if t["model"] == "stg_web__events_triaged" and t["rule"] == "within_retention"
    } == {"warn"}
    results = _md_rows((pack / "compliance_summary.md").read_text(encoding="utf-8"), "Kind")
    assert sum(int(r[2]) for r in results) == len(run["results"])


@pytest.mark.dbt
def test_history_pictures_show_a_point_per_build(pack: Path) -> None:
    text = (pack / "history.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg class=\"history\".*?</svg>", text, flags=re.S)
    charts = {}
    for svg in svgs:
        root = ET.fromstring(svg)  # noqa: S314  (the pack's own output, not untrusted input)
        ns = "{http://www.w3.org/2000/svg}"
        series = {
            g.get("data-series"): [c for c in g.iter(f"{ns}circle") if c.get("class") == "point"]
            for g in root.iter(f"{ns}g")
            if g.get("class") == "series"
        }
        charts[root.get("data-chart")] = series
    assert set(charts) == {"consent", "requests", "destructions", "rules"}
    for name, series in charts.items():
        assert series, name
        for label, points in series.items():
            assert len(points) == len(HISTORY_AS_OF), (name, label, len(points))
    assert set(charts["requests"]) == {"received", "overdue", "closed"}
    purposes = {p["purpose_code"] for p in pages.Catalogue.load(ROOT / "seeds").purposes}
    assert set(charts["consent"]) <= purposes and len(charts["consent"]) >= 5
    assert {"within_retention", "consent_presence"} <= set(charts["rules"])
    assert len(charts["destructions"]) >= 2  # all categories, and each category destroyed
    for as_of in HISTORY_AS_OF:
        assert as_of in text
    assert "The evidence record verifies" in text


@pytest.mark.dbt
def test_first_page_says_which_build_and_whether_every_rule_held(
    pack: Path, evidenced: Evidenced
) -> None:
    last = evidence.read_entries(evidenced.folder)[-1]
    line = (pack / "describes.txt").read_text(encoding="utf-8").strip()
    assert "\n" not in line
    for part in (last["built_at"], str(last["commit"]), str(last["as_of"]), last["hash"][:16]):
        assert part in line, part
    verdict = evidence.verdict(last)
    said = "every privacy rule held" if verdict.held else "NOT every privacy rule held"
    assert said in line and "the evidence record verifies" in line
    assert f"{verdict.passed} of {verdict.tests}" in line or verdict.held
    for test in [t for t in last["privacy_tests"] if t["status"] != "pass"][:3]:
        assert f"{test['rule']} on {test['model'] or test['test']} {test['status']}" in line
    index = (pack / "index.html").read_text(encoding="utf-8")
    assert pages.esc(line) in index


def test_the_docs_carry_every_column_description(pack: Path, documented: Path) -> None:
    """The build persists no docs into the warehouse (decision 61): the pack's dbt docs carry
    every model column's description from the yml all the same."""
    manifest = json.loads((documented / "manifest.json").read_text(encoding="utf-8"))
    page = (pack / "dbt_docs" / "index.html").read_text(encoding="utf-8")
    described = [
        (node["name"], column["name"], column["description"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        for column in node["columns"].values()
        if column.get("description")
    ]
    assert len(described) > 300
    missing = [
        (model, column)
        for model, column, text in described
        if json.dumps(text)[1:-1] not in page and text not in page
    ]
    assert missing == []
