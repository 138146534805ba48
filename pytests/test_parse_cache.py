"""A process parses the project once per distinct input (cdp.stages._parse).

``cdp erase`` runs several staged dbt commands in one process, and a test session hundreds;
each used to parse the whole project again (about 6 s of CPU). The parse is now kept, keyed
by what it reads. A stale manifest would build yesterday's project: these tests show the key
changes with every input of the parse, and that a changed project is parsed again, with real
dbt parses of a copy of the project.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from cdp import dbt_invoke, paths, stages


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
    assert _key(project, "--vars", "{default_phone_region: DE}") != now
    assert _key(project, "--vars", "{default_phone_region: DE}") != _key(
        project, "--vars", "{default_phone_region: RU}"
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
    # what only selects the nodes a command runs is not read by the parse (decision 94)
    monkeypatch.setenv("DBT_EXCLUDE_RESOURCE_TYPES", "unit_test")
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
    # the copy is the parse's manifest, whole, and what a command writes into it stays there
    wanted = first.result.writable_manifest().to_dict()
    assert second.result.writable_manifest().to_dict() == wanted
    node = next(iter(second.result.nodes.values()))
    node.description = "compiled into by the second command"
    again = stages._parse([], extra, str(root))
    assert again.result.writable_manifest().to_dict() == wanted
    # a manifest whose lookups were built (as a parse may leave them) copies to one whose
    # lookups find what they should: dbt's own __reduce_ex__ shifts them by a field or two
    built = again.result
    source = next(iter(built.sources.values()))
    model = next(n for n in built.nodes.values() if n.resource_type == "model")
    assert built.ref_lookup.find(model.name, None, None, built) is not None
    assert built.source_lookup.find(f"{source.source_name}.{source.name}", None, built)
    copied = stages._unpickled(stages._pickled(built))
    for field in dataclasses.fields(built):
        if not field.name.startswith("_"):
            assert type(getattr(copied, field.name)) is type(getattr(built, field.name)), field
    assert copied.ref_lookup.find(model.name, None, None, copied).unique_id == model.unique_id
    found = copied.source_lookup.find(f"{source.source_name}.{source.name}", None, copied)
    assert found is not None and found.unique_id == source.unique_id
    assert copied.writable_manifest().to_dict() == wanted

    new = root / "models" / "marts" / "bi" / "zz_parse_cache_probe.sql"
    new.write_text("select 1 as probe\n", encoding="utf-8")
    third = stages._parse([], extra, str(root))
    assert third.success, third.output[-2000:]
    assert "cdp: the project is unchanged since its last parse" not in third.messages
    assert "model.cdp.zz_parse_cache_probe" in third.result.nodes
    assert "model.cdp.zz_parse_cache_probe" not in second.result.nodes

    # A cache, never a failed command: an entry that no longer makes a copy is forgotten and
    # the project parsed again; a manifest that cannot be pickled (any error an object of it
    # raises) is not kept.
    key = stages._parse_key([], extra, str(root))
    stages._PARSED[key] = b"not a pickled manifest"
    fourth = stages._parse([], extra, str(root))
    assert fourth.success and "model.cdp.zz_parse_cache_probe" in fourth.result.nodes
    assert "cdp: the project is unchanged since its last parse" not in fourth.messages
    assert stages._unpickled(stages._PARSED[key]).nodes.keys() == fourth.result.nodes.keys()

    def unpicklable(manifest: Any) -> bytes:
        raise RuntimeError("an object that refuses to be pickled")

    del stages._PARSED[key]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "_pickled", unpicklable)
        fifth = stages._parse([], extra, str(root))
    assert fifth.success and key not in stages._PARSED


# --------------------------------------------------------------------------- run-time vars
#
# The key leaves out the values of stages.RUN_TIME_VARS (as_of): one parse serves every
# as_of. That holds only while nothing dbt's parse sees depends on the value. dbt's parse
# renders every model, test and analysis with the var's value, keeps what ref(), source() and
# config() were called with, and throws the rendered SQL away; it renders the yml (tests'
# arguments, configs) and dbt_project.yml. So the value may reach rendered SQL text only:
#
# 1. the var is read (``var('as_of')``) only inside macros;
# 2. the macros that read it, directly or through others (a call, or an ``adapter.dispatch``
#    to one of its implementations), are its readers; the macros that call ref(), source() or
#    config(), directly or through others, are the parse's. In a model, test or analysis, and
#    in a macro that is both, a reader is called only inside ``{{ }}`` (never in a ``{% %}``
#    statement, whose result could decide which refs or configs are made), and that
#    expression calls no ref(), source(), config() nor a macro of the parse's. A reader that
#    makes no such call may use the value as it likes: it only returns text;
# 3. no yml or project file mentions the var or calls a reader inside its Jinja.

_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_MACRO = re.compile(
    r"\{%-?\s*(macro|test)\s+(\w+)\s*\(.*?-?%\}(.*?)\{%-?\s*end(?:macro|test)\s*-?%\}", re.S
)
_STATEMENT = re.compile(r"\{%-?(.*?)-?%\}", re.S)
_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_CALL = re.compile(r"(?<![\w.])(\w+)\s*\(")
_DISPATCH = re.compile(r"adapter\.dispatch\(\s*['\"](\w+)['\"]")
_PARSE_TIME_CALLS: Final = frozenset({"ref", "source", "config"})


def _var_read(var: str) -> re.Pattern[str]:
    return re.compile(r"\bvar\(\s*['\"]" + re.escape(var) + r"['\"]")


def _project_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(the SQL files dbt parses, the yml and project files it renders)."""
    sql = sorted(
        p for f in ("models", "macros", "tests", "analyses") for p in (root / f).rglob("*.sql")
    )
    yml = sorted(
        p
        for f in ("models", "macros", "seeds", "tests", "analyses")
        for p in (root / f).rglob("*.yml")
    )
    yml += [root / n for n in ("dbt_project.yml", "selectors.yml") if (root / n).is_file()]
    return sql, yml


def run_time_var_violations(root: Path, var: str) -> list[str]:
    """Where the project reads ``var`` at a position dbt's parse sees (rules 1-4 above)."""
    reads = _var_read(var)
    sql, yml = _project_files(root)
    bodies: dict[str, str] = {}  # macro (or generic test, as test_<name>) -> its body
    outside: dict[Path, str] = {}  # each SQL file without its macro bodies
    for path in sql:
        text = _JINJA_COMMENT.sub("", path.read_text(encoding="utf-8"))
        for kind, name, body in _MACRO.findall(text):
            bodies[name if kind == "macro" else f"test_{name}"] = body
        outside[path] = _MACRO.sub("", text)

    def callees(body: str) -> set[str]:
        called = set(_CALL.findall(body)) & set(bodies)
        for dispatched in _DISPATCH.findall(body):
            called |= {m for m in bodies if m.endswith(f"__{dispatched}")}
        return called

    calls = {name: callees(body) for name, body in bodies.items()}
    readers = {name for name, body in bodies.items() if reads.search(body)}
    while True:  # every macro that reaches a reader
        more = {name for name, called in calls.items() if called & readers} - readers
        if not more:
            break
        readers |= more

    def reach(names: set[str]) -> set[str]:
        seen, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += calls.get(name, ())
        return seen

    def parse_time(names: set[str]) -> set[str]:
        return {n for n in reach(names) if set(_CALL.findall(bodies[n])) & _PARSE_TIME_CALLS} | (
            names & _PARSE_TIME_CALLS
        )

    parse_makers = {name for name in bodies if parse_time({name})}
    reader_call = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, readers)) + r")\s*\(")

    def uses(where: str, text: str) -> list[str]:
        """Rule 2 on one text (a file without its macros, or a macro's body)."""
        out = []
        for statement in _STATEMENT.findall(text):
            if reads.search(statement) or (readers and reader_call.search(statement)):
                out.append(f"{where}: {{% {statement.strip()[:60]} %}} uses {var}")
        for expression in _EXPRESSION.findall(text):
            if reads.search(expression) or (readers and reader_call.search(expression)):
                called = set(_CALL.findall(expression))
                bad = (called & parse_makers) | (called & _PARSE_TIME_CALLS)
                if bad:
                    out.append(
                        f"{where}: {{{{ {expression.strip()[:60]} }}}} passes {var} to "
                        f"{', '.join(sorted(bad))}"
                    )
        return out

    found: list[str] = []
    for name in sorted(readers & parse_makers):
        found += uses(f"macro {name}", bodies[name])
    for path, text in outside.items():
        where = str(path.relative_to(root))
        if reads.search(text):
            found.append(f"{where} reads var('{var}') outside a macro")
        found += uses(where, text)
    for path in yml:
        text = path.read_text(encoding="utf-8")
        jinja = [*_STATEMENT.findall(text), *_EXPRESSION.findall(text)]
        if any(reads.search(j) or (readers and reader_call.search(j)) for j in jinja):
            found.append(f"{path.relative_to(root)} uses {var}")
    return found


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dbt_project.yml", "selectors.yml"):
        shutil.copy(paths.PROJECT_ROOT / name, root / name)
    for folder in ("models", "macros", "seeds", "tests", "analyses"):
        shutil.copytree(paths.PROJECT_ROOT / folder, root / folder)
    return root


def test_the_key_leaves_out_only_the_run_time_vars(project: Path) -> None:
    assert {"as_of", "disclosure_weaken"} == stages.RUN_TIME_VARS
    plain = _key(project, "--vars", "{default_phone_region: RU}")
    assert _key(project, "--vars", "{as_of: '2026-01-01', default_phone_region: RU}") == plain
    assert _key(project, "--vars={as_of: 2026-01-02, default_phone_region: RU}") == _key(
        project, "--vars={default_phone_region: RU}"
    )
    assert _key(project, "--vars", "{as_of: '2026-01-01', default_phone_region: DE}") != plain
    assert _key(project, "--vars", "{as_of: '2026-01-01'}") == _key(project)
    assert _key(project, "--vars", "{}") == _key(project)
    assert _key(project, "--vars", "{disclosure_weaken: [fresh_noise]}") == _key(project)
    assert _key(project, "--vars", "{dp_epsilon: 0.5}") != _key(project, "--vars", "{}")
    assert _key(project, "--vars", "not: [a mapping") != _key(project, "--vars", "{}")


@pytest.mark.parametrize("var", sorted(stages.RUN_TIME_VARS))
def test_a_run_time_var_is_read_only_where_the_parse_does_not_look(var: str) -> None:
    assert run_time_var_violations(paths.PROJECT_ROOT, var) == []


PLANTED: Final = {
    # the var's value decides which model is read
    "models/marts/bi/zz_plant_ref.sql": (
        "{% if as_of_text() > '2027' %}select * from {{ ref('bi_consent_coverage') }}"
        "{% else %}select 1 as x{% endif %}\n"
    ),
    # ... or the model's config
    "models/marts/bi/zz_plant_config.sql": (
        "{{ config(enabled=(as_of_text() < '2030')) }}select {{ as_of() }} as x\n"
    ),
    # a macro that reads it and refs by it; the model calls it in an expression
    "macros/zz_plant.sql": (
        "{% macro zz_by_moment() %}{{ return(ref('bi_consent_coverage') if as_of() else none) }}"
        "{% endmacro %}\n"
    ),
    "models/marts/bi/zz_plant_macro.sql": "select * from {{ zz_by_moment() }}\n",
    # read in a model directly, and in yml
    "models/marts/bi/zz_plant_var.sql": "select '{{ var('as_of') }}' as x\n",
    "models/marts/bi/_zz_plant.yml": (
        "version: 2\nmodels:\n  - name: zz_plant_var\n    config:\n"
        "      enabled: \"{{ var('as_of') is none }}\"\n"
    ),
}


def test_the_run_time_var_rule_fails_on_planted_parse_time_uses(tmp_path: Path) -> None:
    """Each planted file is one way the value could change the manifest: each is found."""
    root = _copy_project(tmp_path)
    assert run_time_var_violations(root, "as_of") == []
    for relative, text in PLANTED.items():
        (root / relative).write_text(text, encoding="utf-8")
    found = run_time_var_violations(root, "as_of")
    assert [f for f in found if "zz_plant_ref.sql" in f and "{% if as_of_text()" in f]
    assert [f for f in found if "zz_plant_config.sql" in f and "config" in f]
    assert [f for f in found if f.startswith("macro zz_by_moment") and "to ref" in f]
    assert [f for f in found if "zz_plant_macro.sql" in f and "to zz_by_moment" in f]
    assert [f for f in found if "zz_plant_var.sql reads var('as_of')" in f]
    assert [f for f in found if "_zz_plant.yml uses as_of" in f]
    assert len(found) == 6, found


#: Two values of each run-time var far apart (a var added to RUN_TIME_VARS needs its own).
RUN_TIME_SAMPLES: Final = {
    "as_of": ("2020-01-01", "2031-06-30 23:59:59"),
    "disclosure_weaken": (
        [],
        [
            "no_perturbation",
            "fresh_noise",
            "totals_without_l_diversity",
            "suppressed_rows_shown",
            "totals_without_cohort_protection",
        ],
    ),
}
#: What differs between any two parses: when and where the parse ran.
_PARSE_MOMENT: Final = frozenset({"created_at", "build_path", "generated_at", "invocation_id"})


def _without_moment(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_moment(v) for k, v in value.items() if k not in _PARSE_MOMENT}
    if isinstance(value, list):
        return [_without_moment(v) for v in value]
    return value


@pytest.mark.dbt
@pytest.mark.parametrize("var", sorted(stages.RUN_TIME_VARS))
def test_two_values_of_a_run_time_var_parse_to_the_same_manifest(var: str, tmp_path: Path) -> None:
    """The rule above, by experiment on the project itself: two real parses (no cache, each
    in its own target path, so no partial parse either) with two values of the var give the
    same manifest, every node's refs, sources, config and dependencies included."""
    assert set(RUN_TIME_SAMPLES) == stages.RUN_TIME_VARS
    manifests = []
    for number, value in enumerate(RUN_TIME_SAMPLES[var]):
        parsed = dbt_invoke.invoke(
            ["parse", "--no-write-json", "--vars", json.dumps({var: value})],
            extra=["--target-path", str(tmp_path / f"target{number}"), "--target", "lint"],
            echo=False,
            project_dir=str(paths.PROJECT_ROOT),
        )
        assert parsed.success, parsed.output[-2000:]
        written = parsed.result.writable_manifest().to_dict()
        written.pop("metadata")
        manifests.append(_without_moment(written))
    first, second = manifests
    # The whole project was parsed: a node for every model file, and their tests. (A count of
    # nodes, > 300, stood here; decision 79 made the 164 per-column not_null tests 61.)
    models = [uid for uid in first["nodes"] if uid.startswith("model.")]
    assert len(models) == len(list((paths.PROJECT_ROOT / "models").rglob("*.sql")))
    assert sum(uid.startswith("test.") for uid in first["nodes"]) > 100
    assert first.keys() == second.keys()
    for part in first:
        assert first[part] == second[part], f"the manifest's {part} depends on {var}"
