"""Publishing the anonymised marts: atomic swap under a live reader, contents, and the GE checkpoint.

Reuses the session ``built`` warehouse; works on copies of its files.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import threading
import time
from pathlib import Path

import duckdb
import pytest

from cdp import cli, gx_checkpoint, publish
from conftest import Workspace, copy_workspace
from test_marts import BI_MARTS


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workspace_env(
    built: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = copy_workspace(built, tmp_path / "db").env
    env["CDP_PUBLISHED_DIR"] = str(tmp_path / "published")
    env["CDP_QUALITY_REPORT_DIR"] = str(tmp_path / "quality")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_publish_holds_only_the_marts_and_never_writes_the_warehouse(
    workspace_env: dict[str, str],
) -> None:
    warehouse = Path(workspace_env["CDP_WAREHOUSE_DB"])
    raw = Path(workspace_env["CDP_RAW_DB"])
    before = (_digest(warehouse), _digest(raw))
    result = publish.publish()
    assert (_digest(warehouse), _digest(raw)) == before
    assert sorted(result.tables) == sorted(BI_MARTS)
    con = duckdb.connect(str(result.database), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall()
        assert tables == [("bi", name) for name in sorted(BI_MARTS)]
        keys = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where column_name like '%\\_key' escape '\\'"
        ).fetchall()
        assert keys == []
    finally:
        con.close()
    parquet = Path(workspace_env["CDP_PUBLISHED_DIR"]) / "parquet"
    assert parquet.is_symlink()
    assert sorted(p.stem for p in parquet.glob("*.parquet")) == sorted(BI_MARTS)
    assert not list(Path(workspace_env["CDP_PUBLISHED_DIR"]).glob(".*tmp"))
    # owner-only unless shared with BI (CDP_PUBLISHED_MODE), set explicitly under umask 077
    published = Path(workspace_env["CDP_PUBLISHED_DIR"])
    file_mode, dir_mode = publish.published_modes()
    assert (file_mode, dir_mode) == (0o600, 0o700)
    for path in [result.database, *parquet.glob("*"), published, result.parquet_dir]:
        expected = dir_mode if path.is_dir() else file_mode
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_published_mode_is_the_operators_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_PUBLISHED_MODE", "group")
    assert publish.published_modes() == (0o640, 0o750)
    monkeypatch.setenv("CDP_PUBLISHED_MODE", "everyone")
    with pytest.raises(publish.PublishError, match="CDP_PUBLISHED_MODE must be one of"):
        publish.published_modes()


def test_a_reader_keeps_querying_through_a_build_and_publish(workspace_env: dict[str, str]) -> None:
    first = publish.publish()
    reader = duckdb.connect(str(first.database), read_only=True)
    old_inode = os.stat(first.database).st_ino
    errors: list[BaseException] = []
    queries = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal queries
        while not stop.is_set():
            try:
                total = reader.execute(
                    "select count(*) from bi.bi_sales_by_region_month"
                ).fetchall()
                assert total[0][0] == first.tables["bi_sales_by_region_month"]
                queries += 1
            except BaseException as exc:
                errors.append(exc)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        # A real `cdp build` (the marts and their tests), then the validated publish and swap.
        code = cli.main(["build", "--select", "path:models/marts/bi"])
    finally:
        stop.set()
        thread.join()
    try:
        assert code == 0
        assert errors == []
        assert queries > 20
        assert os.stat(first.database).st_ino != old_inode  # the file was swapped underneath
        again = reader.execute("select count(*) from bi.bi_customer_segments").fetchall()
        assert again[0][0] == first.tables["bi_customer_segments"]  # still the old release
    finally:
        reader.close()
    fresh = duckdb.connect(str(first.database), read_only=True)
    try:
        assert fresh.execute("select count(*) from bi.bi_consent_coverage").fetchall()[0][0] > 0
    finally:
        fresh.close()
    assert (Path(workspace_env["CDP_QUALITY_REPORT_DIR"]) / "index.html").exists()


def test_checkpoint_passes_on_the_build_and_fails_on_a_planted_email(
    workspace_env: dict[str, str], tmp_path: Path
) -> None:
    result = publish.publish()
    outcome = gx_checkpoint.run_checkpoint(result.database, tmp_path / "report_ok")
    assert outcome.success, outcome.failures
    assert outcome.expectations > 40
    _assert_report_renders_each_mart(tmp_path / "report_ok", result.database, failed=set())

    con = duckdb.connect(str(result.database))
    try:
        con.execute(
            "update bi.bi_sales_by_region_month set region = 'ivan.petrov@example.com' "
            "where rowid = (select min(rowid) from bi.bi_sales_by_region_month)"
        )
    finally:
        con.close()
    planted = gx_checkpoint.run_checkpoint(result.database, tmp_path / "report_bad")
    assert not planted.success
    assert any("bi_sales_by_region_month" in f and "regex" in f.lower() for f in planted.failures)
    _assert_report_renders_each_mart(
        tmp_path / "report_bad", result.database, failed={"bi_sales_by_region_month"}
    )


def _assert_report_renders_each_mart(report: Path, database: Path, failed: set[str]) -> None:
    """The auditor's HTML report: one validation page per published mart, each listed on the
    index with its outcome (the marts in ``failed`` as failed, every other one as passed)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        marts = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = 'bi'"
            ).fetchall()
        }
    finally:
        con.close()
    assert failed <= marts and len(marts) >= 5, marts
    pages = {page.parent.parent.parent.name for page in (report / "validations").rglob("*.html")}
    assert pages == {f"{mart}__published" for mart in marts}, pages
    index = (report / "index.html").read_text()
    listed = {
        asset: verdict
        for verdict, asset in re.findall(
            r"'_validation_success_text': '(\w+)', 'asset_name': '(\w+)'", index
        )
    }
    assert listed == {m: "Failed" if m in failed else "Success" for m in marts}, listed


def test_a_failed_validation_replaces_nothing(workspace_env: dict[str, str]) -> None:
    first = publish.publish()
    before = _digest(first.database)

    def refuse(candidate: Path) -> None:
        raise publish.PublishError("planted refusal")

    with pytest.raises(publish.PublishError, match="planted refusal"):
        publish.publish(validate=refuse)
    assert _digest(first.database) == before
    assert not list(first.database.parent.glob(".*tmp"))


def test_a_publish_sweeps_what_a_killed_publish_left_and_publishers_take_turns(
    workspace_env: dict[str, str],
) -> None:
    first = publish.publish()
    published = Path(workspace_env["CDP_PUBLISHED_DIR"])
    current = (published / "parquet").resolve()
    # what a publish killed before its swap leaves: its temp file and WAL, its link, its folders
    orphans = [
        published / ".marts-20991231T000000-dead.duckdb.tmp",
        published / ".marts-20991231T000000-dead.duckdb.tmp.wal",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half written")
    os.symlink("versions/none", published / ".parquet-20991231T000000-dead.tmp")
    unfinished = published / "versions" / "20000101T000000-half"  # no release.json
    unfinished.mkdir()
    never_swapped = published / "versions" / "20991231T000000-dead"  # newer than current
    never_swapped.mkdir()
    (never_swapped / "release.json").write_text("{}")

    # another publisher holds the folder: this one refuses at once, replacing nothing
    fd = os.open(published / ".publish.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(publish.PublishError, match="another publish"):
            publish.publish()
    finally:
        os.close(fd)
    assert all(orphan.exists() for orphan in orphans)

    second = publish.publish()
    assert not any(orphan.exists() for orphan in orphans)
    assert not list(published.glob(".parquet-*.tmp"))
    assert not unfinished.exists() and not never_swapped.exists()
    assert current.exists()  # the previous version stays for readers still holding it
    assert (published / "parquet").resolve() == second.parquet_dir.resolve()
    assert second.tables == first.tables
