"""A process parses the project once per distinct input (cdp.stages._parse).

``cdp erase`` runs several staged dbt commands in one process, and a test session hundreds;
each used to parse the whole project again (about 6 s of CPU). The parse is now kept, keyed
by what it reads. A stale manifest would build yesterday's project: these tests show the key
changes with every input of the parse, and that a changed project is parsed again, with real
dbt parses of a copy of the project.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp import paths, stages


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\nprofile: p\n", encoding="utf-8")
    (root / "profiles.yml").write_text("p: {}\n", encoding="utf-8")
    (root / "models").mkdir()
    (root / "models" / "a.sql").write_text("select 1 as x\n", encoding="utf-8")
    return root


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("CDP_", "DBT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CDP_WAREHOUSE_DB", str(tmp_path / "one" / "warehouse.duckdb"))
    monkeypatch.setenv("CDP_MASTER_KEY", "k" * 64)
    yield


def _key(project: Path, *parse_args: str, extra: tuple[str, ...] = ()) -> str:
    return stages._parse_key(parse_args, extra, str(project))


@pytest.mark.usefixtures("environ")
def test_the_key_follows_every_input_of_the_parse(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = _key(project)
    assert _key(project) == base
    # what the parse reads changes the key
    (project / "models" / "a.sql").write_text("select 2 as x\n", encoding="utf-8")
    edited = _key(project)
    assert edited != base
    (project / "models" / "b.sql").write_text("select 1 as y\n", encoding="utf-8")
    added = _key(project)
    assert added not in (base, edited)
    (project / "models" / "b.sql").unlink()
    assert _key(project) == edited
    (project / "macros").mkdir()
    (project / "macros" / "m.sql").write_text("{% macro m() %}1{% endmacro %}\n", "utf-8")
    assert _key(project) != edited
    with_macro = _key(project)
    (project / "profiles.yml").write_text("p: {target: x}\n", encoding="utf-8")
    assert _key(project) != with_macro
    # a folder dbt_project.yml names (doc blocks) is read too
    (project / "dbt_project.yml").write_text(
        "name: p\nprofile: p\ndocs-paths: [blocks]\n", encoding="utf-8"
    )
    (project / "blocks").mkdir()
    with_blocks = _key(project)
    (project / "blocks" / "d.md").write_text("{% docs d %}x{% enddocs %}\n", "utf-8")
    assert _key(project) != with_blocks
    now = _key(project)
    assert _key(project, "--vars", "{as_of: '2026-01-01'}") != now
    assert _key(project, "--vars", "{as_of: '2026-01-01'}") != _key(
        project, "--vars", "{as_of: '2026-01-02'}"
    )
    assert _key(project, extra=("--no-partial-parse",)) != now
    monkeypatch.setenv("CDP_TARGET", "privacy")
    assert _key(project) != now
    monkeypatch.delenv("CDP_TARGET")
    # the database file's name is read (it names the database), not its folder
    monkeypatch.setenv("CDP_WAREHOUSE_DB", str(tmp_path / "two" / "warehouse.duckdb"))
    assert _key(project) == now
    monkeypatch.setenv("CDP_WAREHOUSE_DB", str(tmp_path / "two" / "other.duckdb"))
    assert _key(project) != now
    monkeypatch.setenv("CDP_WAREHOUSE_DB", str(tmp_path / "one" / "warehouse.duckdb"))
    # where dbt writes is not an input; the key never is
    assert _key(project, extra=("--target-path", "/a", "--log-path", "/b")) == now
    monkeypatch.setenv("CDP_MASTER_KEY", "j" * 64)
    assert _key(project) == now


@pytest.mark.dbt
def test_a_changed_project_is_parsed_again(tmp_path: Path) -> None:
    """Real parses of a copy of the project: the second is the kept one; after a model is
    added, the parse runs again and the manifest has it."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dbt_project.yml", "profiles.yml", "selectors.yml"):
        shutil.copy(paths.PROJECT_ROOT / name, root / name)
    for folder in ("models", "macros", "seeds", "tests", "analyses", "docs/blocks"):
        shutil.copytree(paths.PROJECT_ROOT / folder, root / folder)
    extra = ["--target-path", str(tmp_path / "target"), "--target", "lint"]

    first = stages._parse([], extra, str(root))
    assert first.success, first.output[-2000:]
    assert "cdp: the project is unchanged since its last parse" not in first.messages
    second = stages._parse([], extra, str(root))
    assert second.success and second.messages == [
        "cdp: the project is unchanged since its last parse"
    ]
    assert set(second.result.nodes) == set(first.result.nodes)
    assert second.result is not first.result  # each command compiles into its own copy

    new = root / "models" / "marts" / "bi" / "zz_parse_cache_probe.sql"
    new.write_text("select 1 as probe\n", encoding="utf-8")
    third = stages._parse([], extra, str(root))
    assert third.success, third.output[-2000:]
    assert "cdp: the project is unchanged since its last parse" not in third.messages
    assert "model.cdp.zz_parse_cache_probe" in third.result.nodes
    assert "model.cdp.zz_parse_cache_probe" not in second.result.nodes
