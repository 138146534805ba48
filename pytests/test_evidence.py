"""The build evidence record: true to each build's results, tamper-evident, no personal data."""

from __future__ import annotations

import csv
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp import evidence
from cdp import stages as cdp_stages
from cdp.pack import pages, summary
from conftest import HISTORY_AS_OF, ROOT, Evidenced, Workspace, query

pytestmark = [pytest.mark.dbt, pytest.mark.slow]


def copy_record(evidenced: Evidenced, folder: Path) -> Path:
    shutil.copytree(evidenced.folder, folder)
    return folder


def rewrite_lines(folder: Path, change: Any) -> None:
    file = folder / evidence.LOG_NAME
    lines = file.read_text(encoding="utf-8").splitlines()
    file.write_text("\n".join(change(lines)) + "\n", encoding="utf-8")


def test_every_build_is_recorded_with_its_own_test_outcomes(evidenced: Evidenced) -> None:
    entries = evidence.read_entries(evidenced.folder)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [str(e["as_of"])[:10] for e in entries] == list(HISTORY_AS_OF)
    assert evidence.verify(evidenced.folder) == []
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    manifest = json.loads((evidenced.target / "manifest.json").read_text(encoding="utf-8"))
    for entry, file in zip(entries, evidenced.run_results, strict=True):
        assert str(entry["commit"]).startswith(head)
        assert entry["key_version"] == "v1"
        run = json.loads(file.read_text(encoding="utf-8"))
        assert entry["invocation_id"] == run["metadata"]["invocation_id"]
        by_name = {
            manifest["nodes"][r["unique_id"]]["name"]: r["status"]
            for r in run["results"]
            if r["unique_id"].startswith("test.")
        }
        recorded = {t["test"]: t["status"] for t in entry["privacy_tests"]}
        assert recorded and all(by_name[name] == status for name, status in recorded.items())
        rules = {t["rule"] for t in entry["privacy_tests"]}
        assert {"within_retention", "consent_presence", "accounts_for_every_raw_row"} <= rules
        assert "assert_no_unkeyed_hash_of_identifiers" in rules
        total = sum(r["count"] for r in entry["results"])
        assert total == len(run["results"])
        assert entry["row_accounting"] and entry["consent"] and entry["requests"]
    # The purge before the third build destroyed expired rows; the record shows it.
    assert not entries[1]["destructions"]
    assert sum(d["rows"] for d in entries[2]["destructions"]) > 0


def test_the_record_is_owner_only_and_holds_no_personal_data(evidenced: Evidenced) -> None:
    ws = evidenced.workspace
    assert stat.S_IMODE(evidenced.folder.stat().st_mode) == 0o700
    for name in (evidence.LOG_NAME, evidence.HEAD_NAME):
        assert stat.S_IMODE((evidenced.folder / name).stat().st_mode) == 0o600
    text = (evidenced.folder / evidence.LOG_NAME).read_text(encoding="utf-8")
    personal: set[str] = set()
    for db, sql in (
        (
            ws.warehouse_db,
            "select distinct person_key from intermediate.int_consent__person_purposes",
        ),
        (ws.warehouse_db, "select distinct customer_key from staging.stg_crm__customers_triaged"),
        (ws.raw_db, "select distinct email from crm.customers"),
        (ws.raw_db, "select distinct customer_id from crm.customers"),
        (ws.raw_db, "select distinct phone from crm.customers"),
    ):
        personal |= {str(r[0]) for r in query(db, sql) if r[0] and len(str(r[0])) >= 6}
    assert len(personal) > 300
    assert not [value for value in personal if value in text]
    assert not re.search(r"v[0-9]+_[A-Za-z0-9_-]{20,}", text), "a pseudonym in the record"


def test_an_edited_entry_is_detected(evidenced: Evidenced, tmp_path: Path) -> None:
    folder = copy_record(evidenced, tmp_path / "edited")

    def edit(lines: list[str]) -> list[str]:
        entry = json.loads(lines[1])
        entry["privacy_tests"][0]["status"] = (
            "fail" if entry["privacy_tests"][0]["status"] == "pass" else "pass"
        )
        return [lines[0], json.dumps(entry), *lines[2:]]

    rewrite_lines(folder, edit)
    problems = evidence.verify(folder)
    assert any("seq 2 was edited" in p for p in problems), problems
    assert evidence.main(["--dir", str(folder), "verify"]) == 1
    # Recomputing the edited entry's own hash breaks the link to the next entry instead.
    rewrite_lines(
        folder,
        lambda lines: [
            lines[0],
            json.dumps({**json.loads(lines[1]), "hash": evidence.entry_hash(json.loads(lines[1]))}),
            *lines[2:],
        ],
    )
    assert any("seq 3 does not follow" in p for p in evidence.verify(folder))


def test_a_deleted_entry_is_detected(evidenced: Evidenced, tmp_path: Path) -> None:
    middle = copy_record(evidenced, tmp_path / "middle")
    rewrite_lines(middle, lambda lines: [lines[0], lines[2]])
    problems = evidence.verify(middle)
    assert any("deleted" in p for p in problems) and any("does not follow" in p for p in problems)

    last = copy_record(evidenced, tmp_path / "last")
    kept_head = evidence.head(last)
    assert kept_head is not None
    rewrite_lines(last, lambda lines: lines[:2])
    assert any("head file" in p for p in evidence.verify(last))
    # Even with the head file rewritten to match, the head an auditor kept is missing.
    second = json.loads((last / evidence.LOG_NAME).read_text(encoding="utf-8").splitlines()[1])
    (last / evidence.HEAD_NAME).write_text(f"2:{second['hash']}\n", encoding="utf-8")
    assert evidence.verify(last) == []
    assert any("expected head" in p for p in evidence.verify(last, expect_head=kept_head))
    assert evidence.main(["--dir", str(last), "verify", "--expect-head", kept_head]) == 1
    assert (
        evidence.main(["--dir", str(evidenced.folder), "verify", "--expect-head", kept_head]) == 0
    )


def test_an_edited_record_refuses_new_entries(evidenced: Evidenced, tmp_path: Path) -> None:
    folder = copy_record(evidenced, tmp_path / "refuse")
    rewrite_lines(folder, lambda lines: lines[1:])
    with pytest.raises(evidence.EvidenceError, match="does not verify"):
        evidence.record(
            evidenced.target,
            folder=folder,
            warehouse=evidenced.workspace.warehouse_db,
            raw=evidenced.workspace.raw_db,
        )


def test_every_category_holder_is_tested_or_the_catalogue_says_why(evidenced: Evidenced) -> None:
    """The catalogue's untested_models are exactly the holders without a retention test."""
    entry = evidence.read_entries(evidenced.folder)[-1]
    catalogue = pages.Catalogue.load(ROOT / "seeds")
    tested: dict[str, set[str]] = {}
    for test in entry["privacy_tests"]:
        if test["rule"] == "within_retention":
            for category in test["categories"]:
                tested.setdefault(category, set()).add(test["model"])
    assert set(entry["retention_holders"]) <= set(catalogue.categories)
    for category, spec in catalogue.categories.items():
        holders = set(entry["retention_holders"].get(category, []))
        untested = holders - tested.get(category, set())
        declared = {m for m in spec["untested_models"].split(";") if m}
        assert untested == declared, (category, sorted(untested ^ declared))
        if untested or not tested.get(category):
            assert len(spec["untested_reason"]) > 40, category
    for row in summary.retention_status(catalogue, entry):
        assert "NO REASON" not in row[5], row
        assert row[3] in {"pass", "warn", "fail", "no model"}, row


def test_a_planted_retention_violation_shows_as_fail(evidenced: Evidenced, tmp_path: Path) -> None:
    """An event older than its window in the profile events: dbt's test fails, and so does the summary."""
    source = evidenced.workspace
    root = tmp_path / "planted"
    root.mkdir()
    env = dict(source.env)
    for name in ("CDP_RAW_DB", "CDP_WAREHOUSE_DB", "CDP_VAULT_DB", "CDP_TRUTH_DB"):
        env[name] = str(root / Path(source.env[name]).name)
        shutil.copyfile(source.env[name], env[name])
    ws = Workspace(root=root, key=source.key, env=env)
    con = duckdb.connect(str(ws.warehouse_db))
    try:
        con.execute(
            "insert into marts.fct_profile_events select * replace "
            "(timestamp '2020-01-01' as event_at) from marts.fct_profile_events "
            "where data_category = 'site_activity' limit 1"
        )
    finally:
        con.close()
    as_of = "{as_of: '" + HISTORY_AS_OF[-1] + "'}"
    result = ws.dbt("test", "--select", "fct_profile_events", "--vars", as_of)
    assert not result.success
    folder = copy_record(evidenced, root / "evidence")
    entry = evidence.record(
        root / "target", folder=folder, warehouse=ws.warehouse_db, raw=ws.raw_db
    )
    assert evidence.verify(folder) == []
    failing = [t for t in entry["privacy_tests"] if t["status"] == "fail"]
    # (the planted row may break other rules too, e.g. consent at the event time)
    assert ("within_retention", "fct_profile_events", 1) in [
        (t["rule"], t["model"], t["failures"]) for t in failing
    ]
    rows = {r[0]: r for r in summary.retention_status(pages.Catalogue.load(ROOT / "seeds"), entry)}
    assert rows["site_activity"][3] == "fail"
    assert rows["site_activity"][4] == "1"
    assert not evidence.verdict(entry).held


def test_the_catalogue_reasons_are_documented_columns() -> None:
    with (ROOT / "seeds" / "data_categories.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all("untested_models" in r and "untested_reason" in r for r in rows)
    assert next(r for r in rows if r["data_category"] == "destruction_records")["untested_reason"]


def test_the_command_line_verifies_shows_and_explains(
    evidenced: Evidenced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdp import cli

    assert cli.main(["evidence", "--dir", str(evidenced.folder), "verify"]) == 0
    assert "verified, 3 entries" in capsys.readouterr().out
    assert cli.main(["evidence", "--dir", str(evidenced.folder), "show"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 3 and all("privacy tests passed" in line for line in shown)
    for as_of, line in zip(HISTORY_AS_OF, shown, strict=True):
        assert f"as_of {as_of}" in line
    empty = tmp_path / "no-build"
    empty.mkdir()
    code = cli.main(
        ["evidence", "--dir", str(tmp_path / "ev"), "record", "--target-path", str(empty)]
    )
    assert code == 2
    assert "run_results.json is missing: run a build first" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evidence", "--help"])
    assert exit_info.value.code == 0


def test_a_build_in_stages_is_one_entry(evidenced: Evidenced, tmp_path: Path) -> None:
    """The results of two dbt invocations (e.g. a privacy stage and an analytics stage) together."""
    run = json.loads(evidenced.run_results[-1].read_text(encoding="utf-8"))
    half = len(run["results"]) // 2
    stages = []
    for number, part in enumerate((run["results"][:half], run["results"][half:]), start=1):
        stage = tmp_path / f"stage{number}"
        stage.mkdir()
        shutil.copyfile(evidenced.target / "manifest.json", stage / "manifest.json")
        (stage / "run_results.json").write_text(
            json.dumps({**run, "results": part}), encoding="utf-8"
        )
        stages.append(stage)
    ws = evidenced.workspace
    whole = evidence.collect(
        cdp_stages.stage_target_paths(evidenced.target),
        warehouse=ws.warehouse_db,
        raw=ws.raw_db,
        commit="c",
    )
    staged = evidence.collect(stages, warehouse=ws.warehouse_db, raw=ws.raw_db, commit="c")
    assert staged["privacy_tests"] == whole["privacy_tests"]
    assert staged["results"] == whole["results"]
    assert staged["command"] == "build,build"
