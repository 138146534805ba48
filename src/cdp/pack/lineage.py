"""Column-level lineage computed from dbt's compiled SQL with sqlglot.

Every materialised model's compiled SQL (ephemeral models are inlined there as
CTEs) is parsed, qualified against the catalog's column lists, and walked scope
by scope: each output column is traced to the physical columns it is computed
from, and every reference on the way is classified by what the expression
around it does to the value:

- ``pseudonymised``: inside a keyed pseudonym (``cdp_pseudonym_*``);
- ``encrypted``: inside ``cdp_vault_seal`` (vault encryption);
- ``aggregated``: inside an aggregate that does not return one of its inputs
  (``count``, ``sum``, ``avg``... but not ``min``, ``max``, ``list``);
- ``generalised``: truncation, banding and derivation (``year``,
  ``date_trunc``, ``cdp_truncate_ip``, ``cdp_device_class``, ``case x when``
  mapping to fixed values, a lookup in a seed such as city -> region);
- ``derived``: only a test on the value reaches the result (a comparison, a
  ``case`` condition, ``is null``): a flag, not the value;
- ``hashed``: an unkeyed hash (``md5``, ``sha256``, ``hash``): reversible by
  dictionary, so it protects nothing;
- a window's partition or order carries no value and is not lineage;
- ``passed_through``: anything else (normalisers, casts, ``coalesce``, unknown
  functions: unknown means unprotected).

Along a path the strongest step wins (a pseudonym that is then counted is
aggregated); across alternative paths the weakest wins (a column that holds
either a pseudonym or the plain value holds the plain value).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope, find_all_in_scope

DIALECT = "duckdb"

PASSED = "passed_through"
HASHED = "hashed"
GENERALISED = "generalised"
PSEUDONYMISED = "pseudonymised"
SEALED = "encrypted"
DERIVED = "derived"
AGGREGATED = "aggregated"
DROPPED = "dropped"

# How much of the value is left: higher is more protected.
# A pseudonym still singles a person out (one value per person); a generalised value
# stands for many people; an aggregate for a group.
RANK = {
    PASSED: 0,
    HASHED: 0,
    PSEUDONYMISED: 1,
    SEALED: 1,
    GENERALISED: 2,
    DERIVED: 3,
    AGGREGATED: 4,
}
# Labels that transform a direct identifier into something that may leave staging.
PROTECTIVE = frozenset({GENERALISED, PSEUDONYMISED, SEALED, DERIVED, AGGREGATED})

# sqlglot expression class names (lower case) and anonymous function names.
GENERALISING = frozenset(
    {
        "year",
        "month",
        "quarter",
        "week",
        "weekofyear",
        "day",
        "dayofweek",
        "dayofmonth",
        "dayofyear",
        "hour",
        "extract",
        "datetrunc",
        "timestamptrunc",
        "date_trunc",
        "length",
        "round",
        "floor",
        "ceil",
        "left",
        "right",
        "substring",
        "splitpart",
        "datediff",
        "date_diff",
        "age",
        "cdp_truncate_ip",
        "cdp_device_class",
        "cdp_clean_url",
        "cdp_age_band",
        "sign",
        "width_bucket",
    }
)
HASHING = frozenset(
    {"md5", "sha", "sha1", "sha2", "sha256", "hash", "md5_number", "sha512", "xxhash"}
)
# Aggregates that return (one of) their input values: no protection.
VALUE_AGGREGATES = frozenset(
    {
        "min",
        "max",
        "anyvalue",
        "any_value",
        "first",
        "last",
        "firstvalue",
        "lastvalue",
        "nthvalue",
        "argmax",
        "argmin",
        "arrayagg",
        "list",
        "groupconcat",
        "string_agg",
        "mode",
        "median",
        "quantile",
        "percentilecont",
        "percentiledisc",
        "lag",
        "lead",
        "arrayuniqueagg",
        "histogram",
    }
)
PREDICATES = (exp.Predicate, exp.Not, exp.Connector)
# Tests on a value: only a flag reaches the result.
TESTS = frozenset(
    {"jsonvalid", "json_valid", "isnan", "isinf", "regexplike", "startswith", "endswith"}
)


def compose(first: str, second: str) -> str:
    """The label of a value that went through ``first`` and then ``second`` (strongest wins)."""
    if RANK[second] > RANK[first]:
        return second
    if RANK[second] == RANK[first] and HASHED in (first, second):
        return HASHED
    return first


def weakest(first: str, second: str) -> str:
    """Of two alternative ways a value arrives, the less protected one."""
    if RANK[second] < RANK[first]:
        return second
    if RANK[second] == RANK[first] and HASHED in (first, second):
        return HASHED
    return first


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return type(node).__name__.lower()


def _step(node: exp.Expr, child: exp.Expr) -> str | None:
    """What ``node`` does to the value of its argument ``child``."""
    if isinstance(node, PREDICATES):
        return DERIVED  # a test on the value: only its truth reaches the result
    if isinstance(node, exp.If) and child is node.args.get("this"):
        return DERIVED  # a case condition
    if isinstance(node, exp.Case) and child is node.args.get("this"):
        return GENERALISED  # `case x when ...`: x selects one of fixed values
    if isinstance(node, exp.Window) and child is not node.this:
        return None  # partition or order of a window: decides rows, carries no value
    if isinstance(node, exp.Func):
        name = _function_name(node)
        if name.startswith("cdp_pseudonym"):
            return PSEUDONYMISED
        if name == "cdp_vault_seal":
            # cdp_vault_seal(table, owner, kind, value): only the value is encrypted into
            # the blob; the others are authenticated data, bound to it but not in it.
            arguments = list(getattr(node, "expressions", None) or [])
            if arguments and child is not arguments[-1]:
                return DERIVED
            return SEALED
        if name in HASHING:
            return HASHED
        if name in TESTS:
            return DERIVED
        if name in GENERALISING:
            return GENERALISED
        if isinstance(node, exp.AggFunc):
            if name in VALUE_AGGREGATES:
                if name in ("argmax", "argmin") and child is not node.this:
                    return GENERALISED
                return PASSED
            return AGGREGATED
    return PASSED


def _json_field(column: exp.Expr) -> str | None:
    """`field` when the column is the document of a JSON extraction with a constant path."""
    parent = column.parent
    if (
        not isinstance(parent, (exp.JSONExtract, exp.JSONExtractScalar))
        or parent.this is not column
    ):
        return None
    path = parent.expression
    if not isinstance(path, exp.JSONPath):
        return None
    keys = [str(part.this) for part in path.expressions if isinstance(part, exp.JSONPathKey)]
    if len(keys) != len(path.expressions) - 1 or not keys:
        return None
    return ".".join(keys)


def classify(column: exp.Expr, root: exp.Expr) -> str | None:
    """The label of one column reference inside the projection ``root`` (None: no value flows)."""
    label = PASSED
    child = column
    node = column.parent
    while node is not None:
        step = _step(node, child)
        if step is None:
            return None
        label = compose(label, step)
        if node is root:
            break
        child, node = node, node.parent
    return label


@dataclass(frozen=True, order=True)
class ColumnRef:
    """One column of one relation (dbt unique id of a model, source or seed)."""

    relation: str
    column: str

    def __str__(self) -> str:
        return f"{self.relation}.{self.column}"


@dataclass
class ModelLineage:
    """The direct upstream columns of every output column of one model."""

    unique_id: str
    columns: dict[str, dict[ColumnRef, str]] = field(default_factory=dict)
    error: str | None = None
    unresolved: list[str] = field(default_factory=list)


def _merge(into: dict[ColumnRef, str], more: dict[ColumnRef, str], via: str = PASSED) -> None:
    for ref, label in more.items():
        label = compose(label, via)
        into[ref] = weakest(into[ref], label) if ref in into else label


class _Walker:
    def __init__(self, relations: dict[str, str]) -> None:
        self.relations = relations
        self.memo: dict[tuple[int, str | int], dict[ColumnRef, str]] = {}
        self.unresolved: list[str] = []

    def table_ref(self, table: exp.Table, column: str) -> ColumnRef | None:
        parts = [p.name.lower() for p in (table.args.get("catalog"), table.args.get("db")) if p]
        key = ".".join([*parts, table.name.lower()])
        for candidate in (key, ".".join(key.split(".")[-2:])):
            if candidate in self.relations:
                return ColumnRef(self.relations[candidate], column.lower())
        self.unresolved.append(f"{key}.{column}")
        return None

    def _source(self, scope: Scope, table: str) -> exp.Table | Scope | None:
        current: Scope | None = scope
        while current is not None:
            found = current.sources.get(table)
            if isinstance(found, (exp.Table, Scope)):
                return found
            current = current.parent
        return None

    def resolve(self, scope: Scope, column: str | int) -> dict[ColumnRef, str]:
        key = (id(scope), column)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = {}  # guards against recursive CTEs
        result: dict[ColumnRef, str] = {}
        expression = scope.expression
        if isinstance(expression, exp.SetOperation) and expression.args.get("by_name"):
            # UNION [ALL] BY NAME pairs columns by name, not by position; a branch
            # without the column contributes nulls.
            name = column if isinstance(column, str) else expression.named_selects[column]
            for branch in scope.set_operation_scopes:
                query = branch.expression
                names = (
                    [n.lower() for n in query.named_selects] if isinstance(query, exp.Query) else []
                )
                if name.lower() in names:
                    _merge(result, self.resolve(branch, name))
        elif isinstance(expression, exp.SetOperation):
            index = column if isinstance(column, int) else expression.named_selects.index(column)
            for branch in scope.set_operation_scopes:
                _merge(result, self.resolve(branch, index))
        elif isinstance(expression, exp.Subquery) and scope.subquery_scopes:
            for inner in scope.subquery_scopes:
                _merge(result, self.resolve(inner, column))
        elif isinstance(expression, exp.Select):
            select = self._projection(expression, column)
            if select is not None:
                self._walk_projection(scope, select, result)
        self.memo[key] = result
        return result

    @staticmethod
    def _projection(select: exp.Select, column: str | int) -> exp.Expr | None:
        if isinstance(column, int):
            return select.selects[column] if column < len(select.selects) else None
        for projection in select.selects:
            if projection.alias_or_name.lower() == column.lower():
                return projection
        return None

    def _column(self, scope: Scope, table: str, column: str) -> dict[ColumnRef, str]:
        source = self._source(scope, table)
        if isinstance(source, exp.Table):
            ref = self.table_ref(source, column)
            return {ref: PASSED} if ref is not None else {}
        if isinstance(source, Scope):
            return self.resolve(source, column)
        return {}

    def _lookup_keys(self, scope: Scope, alias: str) -> Iterator[dict[ColumnRef, str]]:
        select = scope.expression
        if not isinstance(select, exp.Select):
            return
        for join in select.args.get("joins") or []:
            if join.alias_or_name != alias or join.args.get("on") is None:
                continue
            for key in join.args["on"].find_all(exp.Column):
                if key.table != alias:
                    yield self._column(scope, key.table, key.name)

    def _walk_projection(
        self, scope: Scope, select: exp.Expr, result: dict[ColumnRef, str]
    ) -> None:
        for reference in find_all_in_scope(select, exp.Column):
            label = classify(reference, select)
            if label is None:
                continue
            found = self._column(scope, reference.table, reference.name)
            field_name = _json_field(reference)
            if field_name is not None:
                # One field of a JSON document: lineage per field (`details.value`).
                found = {
                    ColumnRef(ref.relation, f"{ref.column}.{field_name}"): lab
                    for ref, lab in found.items()
                }
            _merge(result, found, via=label)
            if found and all(ref.relation.startswith("seed.") for ref in found):
                # A lookup in reference data (city -> region): the looked-up value is a
                # generalisation of the join key on the other side.
                for key in self._lookup_keys(scope, reference.table):
                    _merge(result, key, via=compose(label, GENERALISED))
        inner = {id(s.expression): s for s in scope.subquery_scopes}
        for query in find_all_in_scope(select, *exp.UNWRAPPED_QUERIES):
            sub = inner.get(id(query))
            if sub is None:
                continue
            label = classify(query, select)
            if label is None:
                continue
            for name in query.named_selects:
                _merge(result, self.resolve(sub, name), via=label)


def model_lineage(
    unique_id: str,
    sql: str,
    schema: dict[str, Any],
    relations: dict[str, str],
) -> ModelLineage:
    """Trace every output column of one compiled model to the physical columns it reads."""
    lineage = ModelLineage(unique_id)
    try:
        parsed = sqlglot.parse_one(sql, read=DIALECT)
        qualified = qualify(
            parsed,
            dialect=DIALECT,
            schema=schema,
            validate_qualify_columns=False,
            identify=False,
        )
        root = build_scope(qualified)
    except (SqlglotError, ValueError, KeyError) as exc:
        lineage.error = f"{type(exc).__name__}: {exc}"[:500]
        return lineage
    if root is None:
        lineage.error = "not a query"
        return lineage
    walker = _Walker(relations)
    expression = root.expression
    names = expression.named_selects if isinstance(expression, exp.Query) else []
    for name in names:
        try:
            upstream = walker.resolve(root, name)
        except (SqlglotError, ValueError) as exc:
            lineage.error = f"column {name}: {type(exc).__name__}: {exc}"[:500]
            continue
        lineage.columns[name.lower()] = {
            ref: label for ref, label in upstream.items() if ref.relation != unique_id
        }
    lineage.unresolved = sorted(set(walker.unresolved))
    return lineage


@dataclass
class Reach:
    """A personal source column reaching a downstream column: the weakest label and a path."""

    target: ColumnRef
    label: str
    path: tuple[ColumnRef, ...]


@dataclass
class ProjectLineage:
    """Column lineage of the whole project (materialised models) and its closure."""

    manifest: dict[str, Any]
    models: dict[str, ModelLineage]

    def edges(self) -> Iterator[tuple[ColumnRef, ColumnRef, str]]:
        for unique_id, model in self.models.items():
            for column, upstream in model.columns.items():
                for ref, label in upstream.items():
                    yield ref, ColumnRef(unique_id, column), label

    def __post_init__(self) -> None:
        self._downstream: dict[ColumnRef, list[tuple[ColumnRef, str]]] = {}
        self._fields: dict[ColumnRef, list[ColumnRef]] = {}
        for upstream, downstream, label in self.edges():
            self._downstream.setdefault(upstream, []).append((downstream, label))
            if "." in upstream.column:
                whole = ColumnRef(upstream.relation, upstream.column.split(".", 1)[0])
                if upstream not in self._fields.setdefault(whole, []):
                    self._fields[whole].append(upstream)

    def upstream_of(self, ref: ColumnRef) -> dict[ColumnRef, str]:
        model = self.models.get(ref.relation)
        return dict(model.columns.get(ref.column, {})) if model else {}

    def reach(self, start: ColumnRef, *, whole_only: bool = False) -> dict[ColumnRef, Reach]:
        """Every column ``start`` flows into, with the least protected way it gets there.

        A JSON column's fields (``details.value``) flow with it, except from ``start``
        when ``whole_only`` (its fields are classified apart).
        """
        downstream = self._downstream
        fields = self._fields
        best: dict[ColumnRef, Reach] = {}
        stack: list[Reach] = [Reach(start, PASSED, (start,))]
        while stack:
            current = stack.pop()
            outgoing = list(downstream.get(current.target, []))
            if not (whole_only and current.target == start):
                for field_ref in fields.get(current.target, []):
                    outgoing += downstream.get(field_ref, [])
            for target, label in outgoing:
                if target in current.path:
                    continue
                combined = compose(current.label, label)
                known = best.get(target)
                if (
                    known is not None
                    and RANK[known.label] <= RANK[combined]
                    and not (known.label != HASHED and combined == HASHED)
                ):
                    continue
                reach = Reach(target, combined, (*current.path, target))
                best[target] = reach
                stack.append(reach)
        return best


def _relations(manifest: dict[str, Any]) -> dict[str, str]:
    """Relation name (``db.schema.table`` and ``schema.table``, lower case) -> unique id."""
    result: dict[str, str] = {}
    nodes: Iterable[dict[str, Any]] = [
        *manifest["nodes"].values(),
        *manifest["sources"].values(),
    ]
    for node in nodes:
        if node.get("resource_type") not in ("model", "seed", "source", "snapshot"):
            continue
        database = str(node.get("database") or "").lower()
        schema = str(node.get("schema") or "").lower()
        name = str(node.get("alias") or node.get("identifier") or node["name"]).lower()
        if node.get("resource_type") == "source":
            name = str(node.get("identifier") or node["name"]).lower()
        result[f"{database}.{schema}.{name}"] = node["unique_id"]
        result.setdefault(f"{schema}.{name}", node["unique_id"])
    return result


def _schema(catalog: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for section in ("nodes", "sources"):
        for entry in catalog.get(section, {}).values():
            meta = entry["metadata"]
            columns = {
                name.lower(): str(col.get("type") or "varchar")
                for name, col in entry.get("columns", {}).items()
            }
            schema.setdefault(meta["database"].lower(), {}).setdefault(meta["schema"].lower(), {})[
                meta["name"].lower()
            ] = columns
    return schema


def _declared_schema(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    """Fill in relations the catalog lacks from their declared columns.

    The catalog lists what the docs run could see: the analytics stage that
    generates the docs attaches neither the raw zone nor the vault (decision
    35). Sources' declared columns are the landing-zone contract, which every
    build checks column by column before it starts; the vault models' are
    their enforced yml.
    """
    for entry in (*manifest.get("sources", {}).values(), *manifest.get("nodes", {}).values()):
        columns = entry.get("columns") or {}
        database, db_schema = entry.get("database"), entry.get("schema")
        name = entry.get("identifier") or entry.get("alias") or entry.get("name")
        if not columns or not database or not db_schema or not name:
            continue
        tables = schema.setdefault(str(database).lower(), {}).setdefault(str(db_schema).lower(), {})
        if str(name).lower() in tables:
            continue
        tables[str(name).lower()] = {
            str(column).lower(): str(spec.get("data_type") or "varchar")
            for column, spec in columns.items()
        }


def is_materialised(node: dict[str, Any]) -> bool:
    return node.get("resource_type") in ("model", "snapshot") and node.get("config", {}).get(
        "materialized"
    ) not in ("ephemeral",)


def compiled_sql(node: dict[str, Any], target: Path) -> str | None:
    """The compiled SQL of a node: from target/compiled, else the manifest."""
    # Our target first: compiled_path may point at the target dir of another run.
    options: list[Path] = [
        target / "compiled" / str(node["package_name"]) / str(node["original_file_path"])
    ]
    if node.get("compiled_path"):
        options.append(Path(node["compiled_path"]))
    for option in options:
        if option.is_file():
            return option.read_text(encoding="utf-8")
    code = node.get("compiled_code")
    return str(code) if code else None


def load(target: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """manifest.json and catalog.json of a target dir, with a clear error if missing."""
    manifest_file = target / "manifest.json"
    catalog_file = target / "catalog.json"
    for file, how in ((manifest_file, "dbt compile"), (catalog_file, "dbt docs generate")):
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: run `{how} --target-path {target}`")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    catalog = json.loads(catalog_file.read_text(encoding="utf-8"))
    return manifest, catalog


def project_lineage(
    target: Path, manifest: dict[str, Any], catalog: dict[str, Any]
) -> ProjectLineage:
    """Lineage of every materialised model in the manifest."""
    relations = _relations(manifest)
    schema = _schema(catalog)
    _declared_schema(manifest, schema)
    models: dict[str, ModelLineage] = {}
    for unique_id, node in sorted(manifest["nodes"].items()):
        if not is_materialised(node) or node.get("package_name") != manifest["metadata"].get(
            "project_name", node.get("package_name")
        ):
            continue
        sql = compiled_sql(node, target)
        if sql is None:
            models[unique_id] = ModelLineage(unique_id, error="no compiled SQL (run dbt compile)")
            continue
        models[unique_id] = model_lineage(unique_id, sql, schema, relations)
    return ProjectLineage(manifest, models)
