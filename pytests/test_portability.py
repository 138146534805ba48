"""Cross-engine readiness: every macro of the project dispatches by adapter.

Each macro under ``macros/`` (and any in ``tests/generic/``) is a dispatcher,
``{{ return(adapter.dispatch('name', 'cdp')(...)) }}``, with a ``default__name``;
every ``<adapter>__name`` has its dispatcher; a ``default__name`` that has no
portable SQL raises a compiler error that names the macro and the file of its
``duckdb__name`` (docs/portability.md). The files are parsed with dbt's own Jinja
environment, so no dbt run is needed (well under a second).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2.nodes as jn
from dbt_common.clients.jinja import get_environment

from cdp import paths

ROOT = paths.PROJECT_ROOT
MACRO_FOLDERS = ("macros", "tests/generic")
NAMESPACE = "cdp"
PORTABILITY_DOC = ROOT / "docs" / "portability.md"

#: Macros dbt itself calls by name, overriding dbt's own: they stay as they are.
EXEMPT: dict[str, str] = {
    "generate_schema_name": "dbt calls it by name for every node (an override of dbt's own macro)",
    "target_stage": "pure Jinja over target.name: no SQL, the same on every engine",
    "node_stage": "pure Jinja over a node's tags: no SQL, the same on every engine",
    "require_stage": "a pre-hook that raises or renders nothing: no SQL on any engine",
    "bench_profile_operators": "pure Jinja over a parsed plan (a dict): no SQL on any engine",
    "spark__create_csv_table": "dbt-spark's seed table, overridden (macros/spark/seed.sql)",
    "spark__load_csv_rows": "dbt-spark's seed rows, overridden (macros/spark/seed.sql)",
}
#: Generic tests (``{% test x %}`` blocks become macros named ``test_x``) are called by dbt.
GENERIC_TEST_PREFIX = "test_"
#: ``default__x``, ``duckdb__x``, ``spark__x``...: an implementation of the dispatcher ``x``.
IMPLEMENTATION = re.compile(r"^(?P<adapter>[a-z][a-z0-9]*)__(?P<name>\w+)$")


@dataclass(frozen=True)
class Macro:
    name: str
    file: str  # relative to the project root
    line: int
    node: jn.Macro

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def macros_in(root: Path) -> list[Macro]:
    """Every macro (and generic test) defined in the project's macro files."""
    env = get_environment()
    found: list[Macro] = []
    for folder in MACRO_FOLDERS:
        for path in sorted((root / folder).rglob("*.sql")):
            tree = env.parse(path.read_text(encoding="utf-8"))
            for node in tree.find_all(jn.Macro):
                name = node.name.removeprefix("dbt_macro__")
                found.append(Macro(name, path.relative_to(root).as_posix(), node.lineno, node))
    return found


def _const(node: jn.Node | None) -> object:
    return node.value if isinstance(node, jn.Const) else None


def dispatched(node: jn.Node) -> set[tuple[object, object]]:
    """The (name, namespace) pairs of every ``return(adapter.dispatch(name, namespace)(...))``."""
    pairs: set[tuple[object, object]] = set()
    for call in node.find_all(jn.Call):
        if not (isinstance(call.node, jn.Name) and call.node.name == "return" and call.args):
            continue
        returned = call.args[0]
        if not (isinstance(returned, jn.Call) and isinstance(returned.node, jn.Call)):
            continue
        dispatch = returned.node
        target = dispatch.node
        if not (
            isinstance(target, jn.Getattr)
            and target.attr == "dispatch"
            and isinstance(target.node, jn.Name)
            and target.node.name == "adapter"
        ):
            continue
        keywords = {kw.key: kw.value for kw in dispatch.kwargs}
        name = _const(dispatch.args[0] if dispatch.args else keywords.get("macro_name"))
        namespace = _const(
            dispatch.args[1] if len(dispatch.args) > 1 else keywords.get("macro_namespace")
        )
        pairs.add((name, namespace))
    return pairs


def _is_raise(node: jn.Node) -> bool:
    return (
        isinstance(node, jn.Call)
        and isinstance(node.node, jn.Getattr)
        and node.node.attr == "raise_compiler_error"
        and isinstance(node.node.node, jn.Name)
        and node.node.node.name == "exceptions"
    )


def unconditional_raise(macro: jn.Macro) -> jn.Call | None:
    """The ``{{ exceptions.raise_compiler_error(...) }}`` at the top level of the body, if any
    (a raise inside an ``if`` or ``for`` is input validation, not a missing implementation)."""
    for statement in macro.body:
        if isinstance(statement, jn.Output):
            for part in statement.nodes:
                if isinstance(part, jn.Call) and _is_raise(part):
                    return part
    return None


def message_text(call: jn.Call) -> str:
    """The literal text of an error message built with ``~`` (calls such as adapter.type() left out)."""
    return "".join(c.value for c in call.find_all(jn.Const) if isinstance(c.value, str))


def problems(root: Path) -> list[str]:
    """Every macro that breaks the dispatch rules, one line each (empty when all is well)."""
    macros = macros_in(root)
    by_name: dict[str, Macro] = {}
    for macro in macros:
        by_name.setdefault(macro.name, macro)
    found: list[str] = []
    for macro in macros:
        implementation = IMPLEMENTATION.match(macro.name)
        if macro.name in EXEMPT:
            continue
        if implementation:
            base = implementation["name"]
            if base not in by_name:
                found.append(f"{macro.where}: {macro.name} has no dispatcher macro {base}")
            continue
        if macro.name in EXEMPT or macro.name.startswith(GENERIC_TEST_PREFIX):
            continue
        if (macro.name, NAMESPACE) not in dispatched(macro.node):
            found.append(
                f"{macro.where}: macro {macro.name} is not a dispatcher; write "
                f"{{{{ return(adapter.dispatch('{macro.name}', '{NAMESPACE}')(...)) }}}} "
                f"and move its body to default__{macro.name} (or duckdb__{macro.name})"
            )
        if f"default__{macro.name}" not in by_name:
            found.append(f"{macro.where}: macro {macro.name} has no default__{macro.name}")
    for macro in macros:
        if not macro.name.startswith("default__"):
            continue
        raised = unconditional_raise(macro.node)
        if raised is None:
            continue
        base = macro.name.removeprefix("default__")
        text = message_text(raised)
        if not re.search(rf"\b{re.escape(base)}\b", text):
            found.append(f"{macro.where}: {macro.name} raises without naming the macro {base}")
        duckdb = by_name.get(f"duckdb__{base}")
        if duckdb is None:
            found.append(
                f"{macro.where}: {macro.name} raises and there is no duckdb__{base}: "
                f"the DuckDB build itself would fail"
            )
        elif f"duckdb__{base} in {duckdb.file}" not in text:
            found.append(
                f"{macro.where}: {macro.name} raises without saying where the DuckDB version is "
                f"(expected 'duckdb__{base} in {duckdb.file}' in the message)"
            )
    return found


def duckdb_only(root: Path) -> Iterator[str]:
    """The dispatchers that have a DuckDB-specific implementation."""
    for macro in macros_in(root):
        implementation = IMPLEMENTATION.match(macro.name)
        if implementation and implementation["adapter"] == "duckdb":
            yield implementation["name"]


# --------------------------------------------------------------------------- the project


def test_every_macro_dispatches_and_has_a_default() -> None:
    assert problems(ROOT) == []


def test_the_exempt_macros_exist() -> None:
    """The exemption list names only macros that exist (so it cannot silently grow stale)."""
    names = {macro.name for macro in macros_in(ROOT)}
    assert set(EXEMPT) <= names


def test_the_parse_sees_the_project() -> None:
    """The check looks at real macros: dispatchers, defaults, DuckDB versions and generic tests."""
    names = {macro.name for macro in macros_in(ROOT)}
    assert {"triage", "default__triage", "pseudonymise", "duckdb__pseudonymise"} <= names
    assert "test_no_overdue_requests" in names
    assert "test_within_retention" in names  # from tests/generic
    assert len(names) > 100


def test_the_portability_doc_names_every_duckdb_only_macro() -> None:
    """docs/portability.md lists each macro a port must look at."""
    text = PORTABILITY_DOC.read_text(encoding="utf-8")
    missing = sorted({name for name in duckdb_only(ROOT) if f"`{name}`" not in text})
    assert missing == []


# --------------------------------------------------------------------------- the check can fail

PLANTED = """
{% macro plain(x) -%}
    lower({{ x }})
{%- endmacro %}

{% macro lonely(x) -%}
    {{ return(adapter.dispatch('lonely', 'cdp')(x)) }}
{%- endmacro %}
{% macro duckdb__lonely(x) -%}{{ x }}{%- endmacro %}

{% macro duckdb__orphan(x) -%}{{ x }}{%- endmacro %}

{% macro misdirected(x) -%}
    {{ return(adapter.dispatch('other_name', 'cdp')(x)) }}
{%- endmacro %}
{% macro default__misdirected(x) -%}{{ x }}{%- endmacro %}

{% macro foreign(x) -%}
    {{ return(adapter.dispatch('foreign', 'dbt')(x)) }}
{%- endmacro %}
{% macro default__foreign(x) -%}{{ x }}{%- endmacro %}

{% macro quiet(x) -%}
    {{ return(adapter.dispatch('quiet', 'cdp')(x)) }}
{%- endmacro %}
{% macro default__quiet(x) -%}
    {{ exceptions.raise_compiler_error("not supported on " ~ adapter.type()) }}
{%- endmacro %}
{% macro duckdb__quiet(x) -%}{{ x }}{%- endmacro %}

{% macro stranded(x) -%}
    {{ return(adapter.dispatch('stranded', 'cdp')(x)) }}
{%- endmacro %}
{% macro default__stranded(x) -%}
    {{ exceptions.raise_compiler_error("cdp: macro stranded has no portable implementation") }}
{%- endmacro %}

{% macro good(x) -%}
    {{ return(adapter.dispatch('good', 'cdp')(x)) }}
{%- endmacro %}
{% macro default__good(x) -%}
    {%- if x is none -%}{{ exceptions.raise_compiler_error("good: x is required") }}{%- endif -%}
    {{ x }}
{%- endmacro %}
{% macro unportable(x) -%}
    {{ return(adapter.dispatch('unportable', 'cdp')(x)) }}
{%- endmacro %}
{% macro default__unportable(x) -%}
    {{ exceptions.raise_compiler_error("cdp: macro unportable has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__unportable (the DuckDB version is "
        ~ "duckdb__unportable in macros/planted.sql)") }}
{%- endmacro %}
{% macro duckdb__unportable(x) -%}{{ x }}{%- endmacro %}

{% test planted_test(model) %}select 1{% endtest %}
{% macro generate_schema_name(custom_schema_name, node) -%}{{ custom_schema_name }}{%- endmacro %}
"""


def test_the_check_finds_each_kind_of_problem(tmp_path: Path) -> None:
    (tmp_path / "macros").mkdir()
    (tmp_path / "macros" / "planted.sql").write_text(PLANTED, encoding="utf-8")
    found = problems(tmp_path)
    expected = [
        "macro plain is not a dispatcher",
        "macro plain has no default__plain",
        "macro lonely has no default__lonely",
        "duckdb__orphan has no dispatcher macro orphan",
        "macro misdirected is not a dispatcher",
        "macro foreign is not a dispatcher",
        "default__quiet raises without naming the macro quiet",
        "default__quiet raises without saying where the DuckDB version is",
        "default__stranded raises and there is no duckdb__stranded",
    ]
    for text in expected:
        assert [line for line in found if text in line], f"not reported: {text}\n{found}"
    assert len(found) == len(expected), found
    # Well-formed macros, a validating raise, a generic test and an exempt override pass.
    assert not [line for line in found if re.search(r"\b(good|unportable|planted_test)\b", line)]
    assert not [line for line in found if "generate_schema_name" in line]
