"""The project's graph follows dbt's conventions (decision 56), read from the manifest.

dbt-project-evaluator's rules are the yardstick, checked here without the package:
no root models; every ``source()`` and ``ref()`` a model writes is in its graph
(not hidden under ``{% if execute %}``); only staging reads sources, a staging
model reads sources (and seeds, and its table's ``base_`` model) only, and the view
of kept rows reads its triaged model only; one staging model per source table, and
it is a triaged model made by the one staging recipe; a primary-key test on every
model; not_null checked by one not_null_columns test per model, never per column; model names carry their folder's prefix; no model file repeats its folder's
config; a model that calls the plugin's functions is never a view; an import CTE read
more than once says whether DuckDB streams it or copies it; every model and
every macro is documented in yml. They hold for the project and for a copy with a raw
table added the README's way (one line of stage_landing_table), so a new table's staging
is the recipe too.

Where the project departs from a rule it says so below, in one place, with the
reason; an exception that no longer applies fails the test too, so the list stays
true. Models that find the tables they read in dbt's graph at run time (the
sources' metadata, decision 57) declare no dependency on them; only the declared
graph is checked here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import pytest
import sqlglot
import yaml  # type: ignore[import-untyped]
from sqlglot import exp

from cdp import dbt_invoke, stages
from conftest import ROOT, SESSION_RUN_RESULTS, Workspace
from test_new_table import SOURCES_YML, STAGING_MODEL, copy_project

pytestmark = pytest.mark.dbt

PROJECT: Final = "cdp"

#: Every rule's documented exceptions: {rule: {node name: why}}.
EXCEPTIONS: Final[dict[str, dict[str, str]]] = {
    "root_models": {
        "audit_row_accounting": (
            "a union over every triaged model, found in dbt's graph when it runs: the graph is "
            "empty while dbt parses, so it can ref() none of them; its stage runs after staging "
            "(decision 57)"
        ),
        "audit_quarantine": "see audit_row_accounting",
    },
    "one_source_table_per_staging_model": {
        "stg_rights__request_closures": (
            "one union of two tool logs (the purge's destruction log, the vault's "
            "re-identification log), each read only when its tool has run"
        ),
    },
    "one_staging_model_per_source_table": {
        "vault_identifiers": (
            "the vault seals every identifier staging pseudonymises, normalised from the same "
            "raw values: it reads every landing table the sources' metadata names (decision 57)"
        ),
        "vault_customer_names": (
            "the vault seals the names staging drops, read in flight from crm.customers "
            "(staging itself reads it once, in stg_crm__customers_triaged; decision 65)"
        ),
    },
    "staging_model_in_its_source_folder": {
        "vault_identifiers": "the vault's models live together in models/staging/vault",
        "vault_customer_names": "the vault's models live together in models/staging/vault",
        "stg_rights__request_closures": "its sources are tool logs, not landing-zone tables",
        "stg_rights__consent_scopes": (
            "its source is the purge's kept consent scopes (a tool's record), not a landing-zone "
            "table; it sits with the purge's other record, stg_rights__request_closures"
        ),
    },
    "primary_key_test": {
        "audit_quarantine": (
            "one row per quarantined raw row, which has no key of its own; every row is "
            "accounted for by accounts_for_every_raw_row on the triaged models"
        ),
        "int_identity_person_edges": (
            "a view whose key is int_identity_edges' (source_model, id_key_a, id_key_b), tested "
            "there; its left joins go to tables tested unique on id_key, so none repeats a row. A "
            "test of its own executes the four-join view over every edge again, and at 1M customers "
            "ran the privacy stage out of memory (decision 104)"
        ),
        "int_consent__consent_history": "ephemeral step of the consent area, untested (not this change's area)",
        "int_consent__opt_out_events": "ephemeral step of the consent area, untested (not this change's area)",
        "int_consent__retained_person_events": (
            "ephemeral step of the consent area, untested (not this change's area)"
        ),
        "int_consent__subject_persons_fallback": (
            "ephemeral step of the consent area, untested (not this change's area)"
        ),
        "int_consent__subject_persons_identity": (
            "ephemeral step of the consent area, untested (not this change's area)"
        ),
    },
}

#: Model name prefixes by folder (the most specific folder that matches wins).
PREFIXES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    # the vault's tables, written to the vault file; cdp.vault reads them by these names
    ("models/staging/vault/", ("vault_",)),
    ("models/staging/{source}/base/", ("base_{source}__",)),
    ("models/staging/{source}/", ("stg_{source}__",)),
    ("models/intermediate/", ("int_",)),
    # the marts' own intermediate models and the disclosure ledger, kept beside the marts
    ("models/marts/bi/intermediate/", ("int_",)),
    ("models/marts/bi/ledger/", ("audit_",)),
    # the published BI marts: named for the schema BI reads (cdp.publish copies schema bi)
    ("models/marts/bi/", ("bi_",)),
    ("models/marts/", ("fct_", "dim_", "rpt_")),
    ("models/audit/", ("audit_",)),
)

#: The macros every triaged model calls: the one staging recipe (macros/staging).
RECIPE_MACROS: Final = (
    f"macro.{PROJECT}.triage_source",
    f"macro.{PROJECT}.triage",
    f"macro.{PROJECT}.triage_scope_markers",
)
GRAIN_TEST: Final = "accounts_for_every_raw_row"
COMBINATION_TEST: Final = "unique_combination_of_columns"
#: The project's not_null test: the columns of one model checked in one scan (decision 79).
NOT_NULL_TEST: Final = "not_null_columns"


@pytest.fixture(scope="module", params=["project", "with_a_new_table"])
def manifest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A full parse (no partial parse: it drops what a model's config() call set) of the
    project, and of a copy with a raw table added the README's way (its sources yml and the
    one-line stage_landing_table model, nothing else): the rules hold for both."""
    root = tmp_path_factory.mktemp("project_rules")
    project_dir = None
    if request.param == "with_a_new_table":
        project = copy_project(root / "project")
        folder = project / "models" / "staging" / "loyalty"
        folder.mkdir()
        (folder / "_loyalty__sources.yml").write_text(SOURCES_YML, encoding="utf-8")
        (folder / "stg_loyalty__point_events_triaged.sql").write_text(
            STAGING_MODEL, encoding="utf-8"
        )
        project_dir = str(project)
    parsed = dbt_invoke.invoke(
        ["parse", "--target", "lint", "--no-partial-parse"],
        project_dir=project_dir,
        extra=["--target-path", str(root / "target"), "--log-path", str(root / "logs")],
        echo=False,
    )
    assert parsed.success, parsed.output[-2000:]
    return parsed.result


def _models(manifest: Any) -> dict[str, Any]:
    return {
        node.unique_id: node
        for node in manifest.nodes.values()
        if node.resource_type == "model" and node.package_name == PROJECT
    }


def _name(manifest: Any, unique_id: str) -> str:
    node = manifest.nodes.get(unique_id) or manifest.sources.get(unique_id)
    if node is not None and node.resource_type == "source":
        return f"{node.source_name}.{node.name}"
    return str(node.name) if node is not None else unique_id


def _landing_tables(manifest: Any) -> dict[str, Any]:
    """{name of its triaged model: source table} for every landing table (source meta
    landing: true, decision 57): the landing-wide test in tests/audit finds the model by
    this name and checks that every raw row is in it once per batch."""
    tables: dict[str, Any] = {}
    for source in manifest.sources.values():
        meta = {**(source.source_meta or {}), **(source.meta or {}), **(source.config.meta or {})}
        if source.package_name == PROJECT and meta.get("landing"):
            tables[f"stg_{source.source_name}__{source.name}_triaged"] = source
    return tables


def _grain_tested(manifest: Any, node: Any) -> bool:
    """A triaged model's grain (one row per raw row) is tested: by its own
    accounts_for_every_raw_row, or as a landing table's model by the landing-wide test."""
    return node.name in _landing_tables(manifest) or GRAIN_TEST in _tests_of(
        manifest, node.unique_id
    )


def _macro_closure(manifest: Any, macros: Iterable[str]) -> set[str]:
    """The macros given and every macro they call (stage_landing_table calls the recipe's)."""
    found: set[str] = set()
    todo = list(macros)
    while todo:
        uid = todo.pop()
        if uid not in found:
            found.add(uid)
            macro = manifest.macros.get(uid)
            todo.extend(macro.depends_on.macros if macro is not None else ())
    return found


def _staging(node: Any) -> bool:
    return str(node.original_file_path).startswith("models/staging/")


def _source_folder(node: Any) -> str | None:
    """``crm`` for models/staging/crm/... (and models/staging/crm/base/...)."""
    parts = Path(node.original_file_path).parts
    return parts[2] if len(parts) > 3 and parts[:2] == ("models", "staging") else None


def _check(rule: str, offenders: dict[str, str], applied: Iterable[str]) -> None:
    """Offenders not excused fail; an exception that excused nothing is stale."""
    excused = EXCEPTIONS.get(rule, {})
    unexcused = {name: what for name, what in offenders.items() if name not in excused}
    assert not unexcused, f"{rule}: " + "; ".join(f"{n}: {w}" for n, w in sorted(unexcused.items()))
    stale = set(excused) - set(applied)
    assert not stale, f"{rule}: exceptions that no longer apply, remove them: {sorted(stale)}"


def test_no_root_models(manifest: Any) -> None:
    roots = {
        node.name: "no parent: declare its sources or refs where dbt sees them"
        for node in _models(manifest).values()
        if not node.depends_on.nodes
    }
    _check("root_models", roots, roots)


_SOURCE_CALL: Final = re.compile(r"""\bsource\(\s*['"](\w+)['"]\s*,\s*['"](\w+)['"]\s*\)""")
_REF_CALL: Final = re.compile(r"""\bref\(\s*['"](\w+)['"]\s*\)""")


def test_every_source_and_ref_a_model_writes_is_in_its_graph(manifest: Any) -> None:
    """A source() or ref() only rendered at run time (under `execute`) is missing from
    lineage, selection and these rules: declare it with `-- depends_on:`."""
    hidden: dict[str, str] = {}
    nodes = [
        node
        for node in manifest.nodes.values()
        if node.package_name == PROJECT and node.resource_type in ("model", "test", "snapshot")
    ]
    for node in nodes:
        parents = {_name(manifest, uid) for uid in node.depends_on.nodes}
        written = {f"{s}.{t}" for s, t in _SOURCE_CALL.findall(node.raw_code)}
        written |= set(_REF_CALL.findall(node.raw_code))
        missing = sorted(written - parents)
        if missing:
            hidden[node.name] = f"not in depends_on: {missing}"
    _check("hidden_dependencies", hidden, hidden)


def test_only_staging_reads_sources_and_staging_reads_only_sources(manifest: Any) -> None:
    models = _models(manifest)
    by_name = {node.name: node for node in models.values()}
    offenders: dict[str, str] = {}
    for node in models.values():
        parents = [
            manifest.nodes.get(uid) or manifest.sources[uid] for uid in node.depends_on.nodes
        ]
        kinds = {str(parent.resource_type) for parent in parents}
        if not _staging(node):
            if "source" in kinds:
                offenders[node.name] = "reads a source outside models/staging"
            continue
        triaged = by_name.get(f"{node.name}_triaged")
        if triaged is not None:
            # the view of kept rows: its triaged model and nothing else
            if list(node.depends_on.nodes) != [triaged.unique_id]:
                read = sorted(_name(manifest, uid) for uid in node.depends_on.nodes)
                offenders[node.name] = f"reads {read}, not only {triaged.name}"
            continue
        for parent in parents:
            if parent.resource_type in ("source", "seed"):
                continue
            if parent.resource_type == "model" and parent.name.startswith("base_"):
                continue
            offenders[node.name] = (
                f"reads {parent.name}: staging reads sources, seeds and base_ models only"
            )
    _check("staging_reads_sources_only", offenders, offenders)


def test_a_staging_model_reads_one_source_table(manifest: Any) -> None:
    many = {
        node.name: f"reads {sorted(_name(manifest, uid) for uid in sources)}"
        for node in _models(manifest).values()
        if len(sources := [uid for uid in node.depends_on.nodes if uid.startswith("source.")]) > 1
    }
    _check("one_source_table_per_staging_model", many, many)


def test_one_staging_model_per_source_table_made_by_the_recipe(manifest: Any) -> None:
    """Each source table is read by one model; a landing-zone table's is its triaged
    model, which calls the recipe's macros and has the accounting test."""
    models = _models(manifest)
    readers: dict[str, list[str]] = {}
    for node in models.values():
        for uid in node.depends_on.nodes:
            if uid.startswith("source."):
                readers.setdefault(uid, []).append(node.name)
    excused = EXCEPTIONS["one_staging_model_per_source_table"]
    fanout: dict[str, str] = {}
    applied: set[str] = set()
    for uid, source in manifest.sources.items():
        if source.package_name != PROJECT:
            continue
        table = f"{source.source_name}.{source.name}"
        names = readers.get(uid, [])
        applied |= set(names) & set(excused)
        counted = [name for name in names if name not in excused]
        if len(counted) != 1:
            fanout[table] = f"read by {sorted(counted) or 'no model'}: exactly one staging model"
            continue
        reader = models[f"model.{PROJECT}.{counted[0]}"]
        landing = Path(source.original_file_path).parts[2:3] == (source.source_name,)
        if landing or uid in {t.unique_id for t in _landing_tables(manifest).values()}:
            # a landing-zone table: its one reader is its triaged model, made by the recipe
            expected = f"stg_{source.source_name}__"
            if not (reader.name.startswith(expected) and reader.name.endswith("_triaged")):
                fanout[table] = f"read by {reader.name}: expected {expected}<entity>_triaged"
            called = _macro_closure(manifest, reader.depends_on.macros)
            missing = [m for m in RECIPE_MACROS if m not in called]
            if missing:
                fanout[table] = f"{reader.name} does not follow the staging recipe: no {missing}"
            if not _grain_tested(manifest, reader):
                fanout[table] = f"{reader.name} has no {GRAIN_TEST} test"
    assert not fanout, "one_staging_model_per_source_table: " + "; ".join(
        f"{t}: {w}" for t, w in sorted(fanout.items())
    )
    stale = set(excused) - applied
    assert not stale, f"one_staging_model_per_source_table: stale exceptions {sorted(stale)}"


def test_staging_models_live_in_their_source_folder(manifest: Any) -> None:
    offenders: dict[str, str] = {}
    for node in _models(manifest).values():
        sources = {
            manifest.sources[uid].source_name
            for uid in node.depends_on.nodes
            if uid.startswith("source.")
        }
        folder = _source_folder(node)
        if sources and sources != {folder}:
            offenders[node.name] = f"reads {sorted(sources)} from models/staging/{folder}/"
    _check("staging_model_in_its_source_folder", offenders, offenders)


def _tests_of(manifest: Any, unique_id: str) -> dict[str, set[str]]:
    """{generic test name: columns it tests ('' for a model-level test)} of a model. The
    columns of a not_null_columns test count as not_null (decision 79)."""
    tests: dict[str, set[str]] = {}
    for node in manifest.nodes.values():
        metadata = getattr(node, "test_metadata", None)
        if node.resource_type != "test" or metadata is None:
            continue
        if getattr(node, "attached_node", None) != unique_id:
            continue
        tests.setdefault(metadata.name, set()).add(str(getattr(node, "column_name", None) or ""))
        if metadata.name == NOT_NULL_TEST:
            tests.setdefault("not_null", set()).update(map(str, metadata.kwargs["column_names"]))
    return tests


def _kind(constraint: Any) -> str:
    """A constraint's type as dbt writes it in yml (str() of dbt's enum is 'ConstraintType.x')."""
    return str(getattr(constraint.type, "value", constraint.type))


def _enforces_constraints(node: Any) -> bool:
    """Whether DuckDB enforces the node's constraints: an enforced contract on a table (dbt-duckdb
    creates the table with them, then inserts; a view or an ephemeral model keeps none)."""
    return bool(node.contract.enforced) and node.config.materialized in ("table", "incremental")


def _not_null_constrained(node: Any) -> set[str]:
    """The columns a not_null constraint guards, where DuckDB enforces it (decision 66)."""
    if not _enforces_constraints(node):
        return set()
    return {
        name
        for name, column in node.columns.items()
        if any(_kind(c) == "not_null" for c in column.constraints)
    }


def _has_primary_key_test(node: Any, tests: dict[str, set[str]]) -> bool:
    not_null = tests.get("not_null", set()) | _not_null_constrained(node)
    unique_and_not_null = tests.get("unique", set()) & not_null
    constraint = any(_kind(c) == "primary_key" for c in node.constraints) or any(
        _kind(c) == "primary_key" for column in node.columns.values() for c in column.constraints
    )
    return bool(unique_and_not_null - {""}) or COMBINATION_TEST in tests or constraint


def test_every_model_has_a_primary_key_test(manifest: Any) -> None:
    """unique + not_null on a column (the not_null a test or an enforced constraint),
    unique_combination_of_columns, or a primary-key constraint. A triaged model holds one row per raw row, which has no key of its own:
    its grain test is accounts_for_every_raw_row (raw = kept + duplicate + superseded +
    quarantined, per batch); the key is tested unique on its view of kept rows."""
    offenders: dict[str, str] = {}
    for node in _models(manifest).values():
        tests = _tests_of(manifest, node.unique_id)
        if _has_primary_key_test(node, tests):
            continue
        if node.name.endswith("_triaged") and _grain_tested(manifest, node):
            continue
        offenders[node.name] = "no primary-key test"
    _check("primary_key_test", offenders, offenders)


def _field(item: Any, name: str) -> Any:
    """A field of a manifest node, read from dbt's object or from manifest.json's dict."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def not_null_offenders(nodes: Iterable[Any]) -> dict[str, str]:
    """The project's not_null checks that are not in their node's one not_null_columns test
    (decision 79): a per-column not_null test (one node per column where one scan of the model
    checks them all), or a second not_null_columns test of the same node with the same severity
    and where (its columns belong in the first one's list). ``nodes``: a manifest's nodes, as
    dbt's objects or as manifest.json's dicts. {test name: why}."""
    offenders: dict[str, str] = {}
    first: dict[tuple[str, ...], str] = {}
    for node in nodes:
        metadata = _field(node, "test_metadata")
        if _field(node, "resource_type") != "test" or not metadata:
            continue
        if _field(node, "package_name") != PROJECT:
            continue
        name, kind = str(_field(node, "name")), str(_field(metadata, "name"))
        depends_on = _field(_field(node, "depends_on"), "nodes") or []
        tested = str(_field(node, "attached_node") or ",".join(depends_on))
        if kind == "not_null":
            offenders[name] = (
                f"a per-column not_null test of {tested}.{_field(node, 'column_name')}: list "
                f"the column in the {NOT_NULL_TEST} test of its model (one scan, one node)"
            )
        elif kind == NOT_NULL_TEST:
            config = _field(node, "config")
            key = (tested, *(str(_field(config, k)) for k in ("severity", "where", "error_if")))
            if key in first:
                offenders[name] = (
                    f"a second {NOT_NULL_TEST} test of {tested} with the same config as "
                    f"{first[key]}: one list of columns per model"
                )
            first.setdefault(key, name)
    return offenders


def test_not_null_is_one_test_per_model(manifest: Any) -> None:
    """Every not_null check of a model, seed or source is one not_null_columns test listing its
    columns (one per distinct severity or where), never a per-column not_null (decision 79);
    a contracted model's not_null is its constraint (decision 66)."""
    offenders = not_null_offenders(manifest.nodes.values())
    _check("not_null_columns", offenders, offenders)


def _prefixes_for(path: str) -> tuple[str, tuple[str, ...]] | None:
    source = _source_folder_of(path)
    for folder, prefixes in PREFIXES:
        folder = folder.format(source=source)
        if path.startswith(folder):
            return folder, tuple(prefix.format(source=source) for prefix in prefixes)
    return None


def _source_folder_of(path: str) -> str:
    parts = Path(path).parts
    return parts[2] if len(parts) > 3 and parts[:2] == ("models", "staging") else "-"


def test_a_constraint_is_declared_only_where_duckdb_enforces_it(manifest: Any) -> None:
    """A not_null (or any) constraint on a model without an enforced contract, or on a view,
    is never applied: it would look like a check and check nothing (decision 66)."""
    offenders: dict[str, str] = {}
    for node in _models(manifest).values():
        declared = [_kind(c) for c in node.constraints] + [
            f"{name}: {_kind(c)}"
            for name, column in node.columns.items()
            for c in column.constraints
        ]
        if declared and not _enforces_constraints(node):
            offenders[node.name] = (
                f"constraints {declared} on a {node.config.materialized} "
                f"{'with' if node.contract.enforced else 'without'} an enforced contract: "
                "not enforced; use a data test"
            )
    _check("enforced_constraints", offenders, offenders)


def test_model_names_carry_their_folder_prefix(manifest: Any) -> None:
    offenders: dict[str, str] = {}
    for node in _models(manifest).values():
        rule = _prefixes_for(str(node.original_file_path))
        if rule is None:
            offenders[node.name] = f"{node.original_file_path}: no naming rule for its folder"
        elif not node.name.startswith(rule[1]):
            offenders[node.name] = f"in {rule[0]}: expected a name starting {' or '.join(rule[1])}"
    _check("model_prefixes", offenders, offenders)


def _folder_config(project_models: dict[str, Any], fqn: list[str]) -> dict[str, Any]:
    """The config dbt_project.yml gives a model's folder (+keys along its fqn)."""
    config: dict[str, Any] = {}
    level: Any = project_models.get(PROJECT, {})
    for part in [*fqn[1:-1], None]:
        config.update({key[1:]: value for key, value in level.items() if key.startswith("+")})
        level = level.get(part) if part is not None else None
        if not isinstance(level, dict):
            break
    return config


def test_no_model_file_repeats_its_folder_config(manifest: Any) -> None:
    project = yaml.safe_load((ROOT / "dbt_project.yml").read_text(encoding="utf-8"))
    offenders: dict[str, str] = {}
    for node in _models(manifest).values():
        folder = _folder_config(project["models"], list(node.fqn))
        repeated = sorted(
            key
            for key, value in node.config_call_dict.items()
            if key in folder and folder[key] == value
        )
        if repeated:
            offenders[node.name] = f"config({', '.join(repeated)}) is already its folder's"
    _check("repeated_config", offenders, offenders)


def test_a_contracted_model_says_how_each_engine_enforces_it(manifest: Any) -> None:
    """dbt enforces a contract on DuckDB; dbt-spark cannot (it casts to DuckDB's type names
    and skips not_null on Parquet), so a contracted model calls enforced_contract(), which
    turns dbt's check off on Spark and runs the post-hook enforce_contract there instead
    (macros/spark/contract.sql). A new contracted mart without it would build unchecked on
    Spark, or not at all."""
    offenders = {
        node.name: "its contract is enforced but it does not call {{ enforced_contract() }}"
        for node in _models(manifest).values()
        if node.contract.enforced
        and f"macro.{PROJECT}.enforced_contract" not in node.depends_on.macros
    }
    _check("contract_without_engine_check", offenders, offenders)


def _plugin_macros(manifest: Any) -> set[str]:
    """Macros that call a function the cdp plugin registers (cdp_*), and every macro
    that calls one of them."""
    calls = re.compile(r"\bcdp_[a-z_]*(\(|\{\{)")
    macros = {uid: m for uid, m in manifest.macros.items() if m.package_name == PROJECT}
    found = {uid for uid, m in macros.items() if calls.search(m.macro_sql)}
    grew = True
    while grew:
        more = {uid for uid, m in macros.items() if found & set(m.depends_on.macros)} - found
        found |= more
        grew = bool(more)
    return found


def test_a_model_that_calls_the_plugin_is_not_a_view(manifest: Any) -> None:
    """The plugin's functions exist only on the connection it configured: a view calling
    one (itself or through an ephemeral model it inlines) fails on any other connection."""
    plugin = _plugin_macros(manifest)
    assert (
        f"macro.{PROJECT}.pseudonymise" in plugin and f"macro.{PROJECT}.normalise_phone" in plugin
    )
    models = _models(manifest)

    def inlined_macros(node: Any) -> set[str]:
        found = set(node.depends_on.macros)
        for uid in node.depends_on.nodes:
            parent = models.get(uid)
            if parent is not None and parent.config.materialized == "ephemeral":
                found |= inlined_macros(parent)
        return found

    offenders = {
        node.name: f"a view calling {sorted(m.split('.')[-1] for m in inlined_macros(node) & plugin)}"
        for node in models.values()
        if node.config.materialized == "view" and inlined_macros(node) & plugin
    }
    _check("plugin_calls_in_views", offenders, offenders)


#: An import CTE, `name as (select * from {{ ref(...) }})` (or a source, or with a filter under
#: `{% if %}`), and what it is declared between its name and its parenthesis:
#: `{{ inline_cte() }}`, `{{ materialized_cte() }}` or nothing.
_IMPORT_CTE: Final = re.compile(
    r"\b(\w+)\s+as\s+(?:\{\{-?\s*(?:cdp\.)?(inline_cte|materialized_cte)\(\s*\)\s*-?\}\}\s*)?"
    r"\(\s*select\s+\*\s+from\s+\{\{-?\s*(?:ref|source)\([^)]*\)\s*-?\}\}"
    r"(?:\s*\{%-?\s*if\b.*?\{%-?\s*endif\s*-?%\})?\s*\)",
    re.IGNORECASE | re.DOTALL,
)
_COMMENTS: Final = re.compile(r"\{#.*?#\}|/\*.*?\*/|--[^\n]*", re.DOTALL)


def reread_import_ctes(sql: str) -> dict[str, str]:
    """{name: what is wrong} of the import CTEs of a model's or test's code read more than once
    that say nothing. A read is `from name` or `join name`, not `name.column` nor
    `is distinct from name`."""
    code = _COMMENTS.sub("", sql)
    wrong: dict[str, str] = {}
    for match in _IMPORT_CTE.finditer(code):
        name, declared = match.group(1), match.group(2)
        reads = [
            read
            for read in re.finditer(
                rf"(\w+\s+)?\b(?:from|join)\s+{re.escape(name)}\b(?!\s*\.)", code, re.IGNORECASE
            )
            if (read.group(1) or "").strip().lower() != "distinct"
        ]
        if len(reads) > 1 and not declared:
            wrong[name] = f"read {len(reads)} times"
    return wrong


def test_an_import_cte_read_more_than_once_says_how(manifest: Any) -> None:
    """DuckDB materialises a CTE that is read more than once: it copies every row of the table
    into memory before the first reader starts (decision 104: 1.2 GB at 1M customers, and the
    cause of the privacy stage's out-of-memory failure). An import CTE read more than once is
    declared inline_cte() (each reader scans the table itself) or, on purpose,
    materialized_cte(). Models and singular tests (a test runs in `dbt build` too), as written;
    the check below reads the compiled code."""
    singular_tests = [
        node
        for node in manifest.nodes.values()
        if node.package_name == PROJECT
        and node.resource_type == "test"
        and not getattr(node, "test_metadata", None)
    ]
    assert singular_tests
    offenders = {
        node.name: ", ".join(f"{name} {what}" for name, what in sorted(wrong.items()))
        for node in [*_models(manifest).values(), *singular_tests]
        if (wrong := reread_import_ctes(node.raw_code))
    }
    _check("import_cte_read_once", offenders, offenders)


#: A planted model: its import CTE is read by both sides of a join.
PLANTED_REREAD: Final = """
with events as (

    select * from {{ ref('events') }}  -- the table

),

pairs as (

    select first_event.id
    from events as first_event
    inner join events as second_event
        on first_event.id = second_event.id + 1

)

select * from pairs
"""


def test_the_import_cte_rule_catches_a_planted_model_and_duckdb_copies_it() -> None:
    """The rule finds the planted model, and DuckDB's plan of it begins with the CTE operator
    that copies the table; declared inline_cte() (DuckDB's `not materialized`), the rule passes
    it and the plan reads the table twice with no copy."""
    con = duckdb.connect()
    con.execute("create table events as select range as id from range(1000)")

    def render(model: str) -> str:  # as dbt renders the two calls on DuckDB
        sql = model.replace("{{ ref('events') }}", "events")
        return sql.replace("{{ inline_cte() }}", "not materialized")

    def copies(model: str) -> int:
        plan = con.execute("explain " + render(model)).fetchall()[0][1]
        return len(re.findall(r"─ CTE ─", plan))

    inline = PLANTED_REREAD.replace("events as (", "events as {{ inline_cte() }} (")
    assert reread_import_ctes(PLANTED_REREAD) == {"events": "read 2 times"}
    assert copies(PLANTED_REREAD) == 1
    assert reread_import_ctes(inline) == {}
    assert copies(inline) == 0
    assert copied_imports(render(PLANTED_REREAD)) == {"events": 2}
    assert copied_imports(render(inline)) == {}
    planted_rows = con.execute(render(PLANTED_REREAD)).fetchall()
    assert len(planted_rows) == 999
    assert sorted(planted_rows) == sorted(con.execute(render(inline)).fetchall())


_E = TypeVar("_E", bound=exp.Expression)


def _arg(node: Any, kind: type[_E]) -> _E | None:
    """A node's direct argument of a kind (its WITH, its FROM), whatever sqlglot names the key."""
    return next((value for value in node.args.values() if isinstance(value, kind)), None)


def _binding(table: exp.Table) -> exp.With | None:
    """The WITH whose CTE a table reference names: the nearest enclosing one defining it. In a
    CTE's own body only the CTEs before it are visible (a CTE is not recursive)."""
    child: Any = table
    node: Any = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = list(node.expressions)
            if isinstance(child, exp.CTE):
                ctes = ctes[: next(i for i, cte in enumerate(ctes) if cte is child)]
            if any(cte.alias.lower() == table.name.lower() for cte in ctes):
                return node
        else:
            with_ = _arg(node, exp.With)
            if (
                with_ is not None
                and with_ is not child
                and any(cte.alias.lower() == table.name.lower() for cte in with_.expressions)
            ):
                return with_
        child, node = node, node.parent
    return None


def _one_relation(body: exp.Expression, clauses: tuple[str, ...]) -> bool:
    """A select of one relation's rows (a filter, a projection): no join, no WITH of its own, no
    aggregate or window, none of the clauses named."""
    return (
        isinstance(body, exp.Select)
        and isinstance((_arg(body, exp.From) or exp.From()).this, exp.Table)
        and _arg(body, exp.With) is None
        and not any(body.args.get(k) for k in ("joins", *clauses))
        and not any(e.find(exp.Window, exp.AggFunc) for e in body.expressions)
    )


def _inlinable(body: exp.Expression) -> bool:
    """What DuckDB inlines into each reader of a CTE read more than once: a filter or projection
    of one relation, with no `qualify`, subquery or volatile function (a `limit` is inlined)."""
    return (
        _one_relation(body, ("group", "having", "distinct", "qualify"))
        and not any(select is not body for select in body.find_all(exp.Select))
        and not body.find(exp.Rand)
    )


def _imports_a_relation(body: exp.Expression) -> bool:
    """`select * from x` or `select x.* from x` (a filter allowed): every row and column of one
    relation, a table or a view (of another CTE, DuckDB inlines it and copies that CTE instead)."""
    if (
        not _one_relation(body, ("group", "having", "distinct", "limit"))
        or len(body.expressions) != 1
    ):
        return False
    (column,) = body.expressions
    source = (_arg(body, exp.From) or exp.From()).this
    return (
        (isinstance(column, exp.Star) or isinstance(column.this, exp.Star))
        and isinstance(source, exp.Table)
        and _binding(source) is None
    )


def copied_imports(sql: str) -> dict[str, int]:
    """{name: times read} of the CTEs of a compiled statement that DuckDB copies whole: an
    import of a relation read more than once, declared neither `not materialized` nor
    `materialized`. A read through a CTE DuckDB inlines (a filter or projection of the import,
    not declared `materialized`) counts once per read of that CTE: DuckDB then copies the
    import (`b as (select * from a where ...)` read twice copies `a`). Compiled SQL has the
    macros expanded and the ephemeral models inlined, so this sees what the rule on the
    written code cannot."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    readers: dict[int, list[exp.Table]] = {}
    for table in tree.find_all(exp.Table):
        if not table.args.get("db") and (with_ := _binding(table)) is not None:
            cte = next(c for c in with_.expressions if c.alias.lower() == table.name.lower())
            readers.setdefault(id(cte), []).append(table)

    def reads(cte: exp.CTE) -> int:
        total = 0
        for table in readers.get(id(cte), []):
            through = table.find_ancestor(exp.CTE)
            declared = None if through is None else through.args.get("materialized")
            inlined = through is not None and (
                declared is False
                or (
                    declared is None
                    and through.this is table.find_ancestor(exp.Select)
                    and _inlinable(through.this)
                )
            )
            total += reads(through) if inlined and through is not None else 1
        return total

    return {
        cte.alias: n
        for cte in tree.find_all(exp.CTE)
        if cte.args.get("materialized") is None
        and _imports_a_relation(cte.this)
        and (n := reads(cte)) > 1
    }


def test_no_built_node_has_duckdb_copy_a_relation_it_imports(built: Workspace) -> None:
    """The rule on what DuckDB is given: the compiled code of every model and test the demo
    build ran (each stage's run_results), macros expanded and ephemeral models inlined."""
    offenders: dict[str, str] = {}
    checked: set[str] = set()
    for stage in stages.STAGES:
        record = built.root / SESSION_RUN_RESULTS / f"{stage.name}.json"
        for result in json.loads(record.read_text())["results"]:
            code = result.get("compiled_code")
            if not code or not code.strip():
                continue
            node = result["unique_id"]
            checked.add(node)
            try:
                copied = copied_imports(code)
            except sqlglot.ParseError as exc:
                raise AssertionError(f"{node}: its compiled code does not parse: {exc}") from exc
            if copied:
                offenders[node.split(".", 2)[-1]] = ", ".join(
                    f"{c} read {n} times" for c, n in sorted(copied.items())
                )
    # each stage's models, and a singular test
    models = {f"model.{PROJECT}.{name}" for name in ("vault_customer_names", "int_identity_nodes")}
    assert models | {f"model.{PROJECT}.dim_customer_profile"} <= checked
    assert f"test.{PROJECT}.assert_identity_links_stay_within_one_person" in checked
    _check("import_cte_read_once_compiled", offenders, offenders)


@pytest.mark.parametrize(
    ("model", "wrong"),
    [
        # read in a subquery and through an alias: twice
        (
            "with e as (select * from {{- ref('events') -}}) "
            "select * from e as a where a.id in (select id from e)",
            {"e": "read 2 times"},
        ),
        (
            "with e as (select * from {{ source('web', 'events') }}) select * from e join e as b using (id)",
            {"e": "read 2 times"},
        ),
        # a filter under {% if %} is still an import
        (
            "with e as (select * from {{ ref('events') }} {%- if is_incremental() %} where id > 0"
            " {%- endif %}) select * from e union all select * from e",
            {"e": "read 2 times"},
        ),
        # `e.id` and `is distinct from e` are no reads of e
        (
            "with e as (select * from {{ ref('events') }}), f as (select * from {{ ref('f') }}) "
            "select e.id from e join f on f.id is not distinct from e.id",
            {},
        ),
        # declared
        (
            "with e as {{ inline_cte() }} (select * from {{ ref('events') }}) select * from e, e",
            {},
        ),
        (
            "with h as {{ materialized_cte() }} (select * from {{ ref('history') }}) "
            "select * from h union all select * from h",
            {},
        ),
        # commented out: no read
        ("with e as (select * from {{ ref('events') }}) select * from e -- join e", {}),
    ],
)
def test_the_import_cte_rule_reads_these_shapes(model: str, wrong: dict[str, str]) -> None:
    assert reread_import_ctes(model) == wrong


@pytest.mark.parametrize(
    ("sql", "copied"),
    [
        ("with e as (select * from t) select * from e join e as b using (id)", {"e": 2}),
        (
            "with e as (select * from t where id > 1) select * from e union all select * from e",
            {"e": 2},
        ),
        ("with e as not materialized (select * from t) select * from e join e as b using (id)", {}),
        ("with e as materialized (select * from t) select * from e join e as b using (id)", {}),
        # a CTE that computes is the engine's to hold
        ("with e as (select id from t group by id) select * from e join e as b using (id)", {}),
        # an inlined ephemeral model's own e is another CTE than the model's e
        (
            "with e as (select * from t), h as (with e as (select * from u) select * from e) "
            "select * from e join h using (id)",
            {},
        ),
        # main.e is a table, not the CTE
        ("with e as (select * from t) select * from e join main.e as b using (id)", {}),
        # read twice through a filter DuckDB inlines: e is copied
        (
            "with e as (select * from t), f as (select * from e where id > 1) "
            "select * from f join f as b using (id)",
            {"e": 2},
        ),
        (
            "with e as not materialized (select * from t), f as (select * from e where id > 1) "
            "select * from f join f as b using (id)",
            {},
        ),
        # a reader declared not materialized runs once per read, whatever it computes
        (
            "with e as (select * from t), f as not materialized "
            "(select id, count(*) as n from e group by id) select * from f join f as b using (id)",
            {"e": 2},
        ),
        # a filter with qualify is held itself: it is f that is copied, not e
        (
            "with e as (select * from t), f as (select * from e qualify row_number() "
            "over (partition by id order by id) = 1) select * from f join f as b using (id)",
            {},
        ),
        # `select t.*` imports as `select *` does; names are matched as DuckDB does, any case
        ("with e as (select t.* from t) select * from E join e as b using (id)", {"e": 2}),
        # through an aggregate: the aggregate is held, e read once
        (
            "with e as (select * from t), f as (select id, count(*) as n from e group by id) "
            "select * from f join f as b using (id)",
            {},
        ),
    ],
)
def test_copied_imports_reads_the_compiled_shapes(sql: str, copied: dict[str, int]) -> None:
    assert copied_imports(sql) == copied


def test_every_model_is_documented(manifest: Any) -> None:
    """A description in yml; a landing table's one-line model (stage_landing_table) stages
    exactly what its source table's description and metadata say, so that one counts."""
    landing = _landing_tables(manifest)
    undocumented = {
        node.name: str(node.original_file_path)
        for node in _models(manifest).values()
        if not str(node.description or "").strip()
        and not (node.name in landing and str(landing[node.name].description or "").strip())
    }
    _check("model_docs", undocumented, undocumented)


def test_every_macro_is_documented(manifest: Any) -> None:
    undocumented = {
        macro.name: str(macro.original_file_path)
        for macro in manifest.macros.values()
        if macro.package_name == PROJECT and not str(macro.description or "").strip()
    }
    _check("macro_docs", undocumented, undocumented)
