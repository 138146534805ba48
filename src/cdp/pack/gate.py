"""The privacy gate: computed PII lineage against the zones and the declared ``meta``.

Fails (exit 1) when
- a direct identifier reaches a column outside the raw zone and the vault
  unprotected (passed through, or an unkeyed hash);
- a direct identifier reaches the published zone at all (only an aggregate or
  a flag derived from it may: a count of people is not a person); published =
  `meta.published: true`, `meta.zone: published`, database `published`, or a
  public model (`access: public`) under models/marts/bi/;
- a raw key (a source column declared ``raw_key: true``: a source id such as
  an order or event id, which joins back to a raw row holding personal data)
  is linkable: it counts as a direct identifier, so it must be pseudonymised
  (or aggregated) wherever it goes. The one allowance is a warehouse column
  that declares ``raw_key_exception: <reason>`` in its meta, which only a raw
  key (never a personal identifier) may reach unprotected, and never the
  published zone (docs/decisions.md, 50);
- a column's declared ``meta`` (``pii``, ``transformation``, ``source_column``)
  disagrees with the lineage computed from the compiled SQL, or a column that
  a direct identifier reaches declares no transformation;
- a model's compiled SQL cannot be parsed (it could not be checked).

    python -m cdp.pack.gate --target-path target   # after dbt compile + docs generate
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cdp.keys import OWNER_ONLY_UMASK
from cdp.pack import lineage as lin
from cdp.pack.lineage import ColumnRef, ProjectLineage, Reach

PII_LEVELS = ("none", "quasi", "sensitive", "direct")
# Declared transformation words that mean the same as a computed label.
EQUIVALENT = {
    lin.PASSED: {"passed_through", "normalised", "none", "copied"},
    lin.HASHED: {"hashed"},
    lin.PSEUDONYMISED: {"pseudonymised"},
    lin.SEALED: {"encrypted", "sealed"},
    lin.GENERALISED: {"generalised", "derived"},
    lin.DERIVED: {"derived", "generalised"},
    lin.AGGREGATED: {"aggregated"},
}
# How much protection a declared word claims (lineage.RANK); unknown words claim everything.
DECLARED_RANK = {word: lin.RANK[label] for label, words in EQUIVALENT.items() for word in words}
DECLARED_RANK.update({"normalised": 0, "none": 0, "derived": lin.RANK[lin.DERIVED]})
PUBLISHED_PATHS = ("models/marts/bi/",)


@dataclass(frozen=True)
class Finding:
    """One reason the gate fails, with where and how to fix it."""

    rule: str
    model: str
    column: str
    file: str
    message: str
    fix: str
    path: tuple[str, ...] = ()
    warning: bool = False

    def __str__(self) -> str:
        route = f"\n    path: {' -> '.join(self.path)}" if self.path else ""
        return (
            f"{'warning ' if self.warning else ''}[{self.rule}] {self.model}.{self.column} ({self.file}): {self.message}"
            f"{route}\n    fix: {self.fix}"
        )


@dataclass
class ColumnVerdict:
    """What reaches one model column, computed and declared."""

    ref: ColumnRef
    computed_pii: str
    computed_transformation: str | None
    declared: dict[str, Any]
    reaches: list[tuple[ColumnRef, str, Reach]] = field(default_factory=list)


def meta_of(entry: dict[str, Any]) -> dict[str, Any]:
    config = entry.get("config") or {}
    meta = dict(entry.get("meta") or {})
    meta.update(config.get("meta") or {})
    return meta


def zone_of(node: dict[str, Any]) -> str:
    """raw | vault | published | warehouse."""
    if node.get("resource_type") == "source":
        return "raw"
    meta = meta_of(node)
    path = str(node.get("original_file_path", ""))
    if (
        str(meta.get("zone", "")).lower() == "published"
        or meta.get("published") is True
        or str(node.get("database", "")).lower() == "published"
        or (
            any(path.startswith(prefix) for prefix in PUBLISHED_PATHS)
            and str(node.get("access") or node.get("config", {}).get("access")) == "public"
        )
    ):
        return "published"
    if str(node.get("database", "")).lower() == "vault" or path.startswith("models/staging/vault/"):
        return "vault"
    return "warehouse"


def raw_key_sources(manifest: dict[str, Any]) -> set[ColumnRef]:
    """Every source column declared ``raw_key: true``: a source id that links to a raw row."""
    return {
        ColumnRef(unique_id, name.lower())
        for unique_id, source in manifest["sources"].items()
        for name, column in source.get("columns", {}).items()
        if meta_of(column).get("raw_key") is True
    }


def personal_sources(manifest: dict[str, Any]) -> list[tuple[ColumnRef, str, bool]]:
    """(column, pii level, whole_only) of every source column classified as personal.

    A JSON column may classify its fields apart (``meta.json_fields: {value: direct,
    purpose_code: none}``); each field is then a column ``details.value`` of its own.
    A raw key is linkable, hence direct, whatever its declared ``pii``.
    """
    result: list[tuple[ColumnRef, str, bool]] = []
    for unique_id, source in sorted(manifest["sources"].items()):
        for name, column in source.get("columns", {}).items():
            meta = meta_of(column)
            pii = "direct" if meta.get("raw_key") is True else str(meta.get("pii") or "none")
            fields = meta.get("json_fields") or {}
            if pii != "none":
                result.append((ColumnRef(unique_id, name.lower()), pii, bool(fields)))
            for field_name, field_pii in fields.items():
                if str(field_pii) != "none":
                    ref = ColumnRef(unique_id, f"{name.lower()}.{field_name}")
                    result.append((ref, str(field_pii), False))
    return result


def label_name(manifest: dict[str, Any], ref: ColumnRef) -> str:
    node = manifest["nodes"].get(ref.relation) or manifest["sources"].get(ref.relation) or {}
    if node.get("resource_type") == "source":
        return f"{node['source_name']}.{node['name']}.{ref.column}"
    return f"{node.get('name', ref.relation)}.{ref.column}"


def verdicts(project: ProjectLineage) -> dict[ColumnRef, ColumnVerdict]:
    """For every model column a personal source reaches: computed pii and transformation."""
    manifest = project.manifest
    reached: dict[ColumnRef, list[tuple[ColumnRef, str, Reach]]] = {}
    for source, pii, whole_only in personal_sources(manifest):
        for target, reach in project.reach(source, whole_only=whole_only).items():
            reached.setdefault(target, []).append((source, pii, reach))
    result: dict[ColumnRef, ColumnVerdict] = {}
    for unique_id, model in project.models.items():
        node = manifest["nodes"][unique_id]
        declared_columns = {k.lower(): v for k, v in node.get("columns", {}).items()}
        for column in model.columns:
            ref = ColumnRef(unique_id, column)
            reaches = reached.get(ref, [])
            pii, transformation = _computed(reaches)
            declared = meta_of(declared_columns.get(column, {}))
            result[ref] = ColumnVerdict(ref, pii, transformation, declared, reaches)
    return result


def _computed(reaches: list[tuple[ColumnRef, str, Reach]]) -> tuple[str, str | None]:
    """The pii level a column holds and the weakest transformation of what makes it so."""
    best_level = "none"
    label: str | None = None
    for _source, pii, reach in reaches:
        if reach.label in (lin.AGGREGATED, lin.DERIVED):
            level = "none"
        elif reach.label == lin.GENERALISED:
            level = "quasi"
        else:
            level = "direct" if pii == "direct" else pii
        if level == "none":
            continue
        if PII_LEVELS.index(level) > PII_LEVELS.index(best_level):
            best_level, label = level, reach.label
        elif level == best_level and label is not None:
            label = lin.weakest(label, reach.label)
    return best_level, label


def check(project: ProjectLineage) -> list[Finding]:
    """Every violation the gate knows, most serious first."""
    manifest = project.manifest
    findings: list[Finding] = []
    for unique_id, model in sorted(project.models.items()):
        node = manifest["nodes"][unique_id]
        if model.error:
            findings.append(
                Finding(
                    "unparsed_sql",
                    node["name"],
                    "*",
                    node["original_file_path"],
                    f"the compiled SQL could not be analysed ({model.error})",
                    "simplify the SQL or extend cdp.pack.lineage; an unchecked model cannot pass",
                )
            )
    for ref, verdict in sorted(verdicts(project).items()):
        node = manifest["nodes"][ref.relation]
        findings += _column_findings(manifest, node, verdict)
    order = {"untransformed_identifier": 0, "published_identifier": 1, "unparsed_sql": 2}
    return sorted(findings, key=lambda f: (order.get(f.rule, 9), f.file, f.column))


def _route(manifest: dict[str, Any], reach: Reach) -> tuple[str, ...]:
    return tuple(label_name(manifest, step) for step in reach.path)


def _column_findings(
    manifest: dict[str, Any], node: dict[str, Any], verdict: ColumnVerdict
) -> list[Finding]:
    findings: list[Finding] = []
    zone = zone_of(node)
    name, column, file = node["name"], verdict.ref.column, node["original_file_path"]
    yml = str(node.get("patch_path") or "").split("://", 1)[-1] or f"a yml next to {file}"
    leaks: dict[str, list[tuple[str, Reach]]] = {}
    raw_keys = raw_key_sources(manifest)
    raw_key_labels = {label_name(manifest, ref) for ref in raw_keys}
    exception = verdict.declared.get("raw_key_exception")
    excepted = False
    for source, pii, reach in verdict.reaches:
        if pii != "direct":
            continue
        if exception and zone == "warehouse" and source in raw_keys and reach.label == lin.PASSED:
            excepted = True  # a declared, reasoned exception: a raw key kept as it is
            continue
        if reach.label in (lin.PASSED, lin.HASHED) and zone != "vault":
            leaks.setdefault("untransformed_identifier", []).append(
                (label_name(manifest, source), reach)
            )
        elif zone == "published" and reach.label not in (lin.AGGREGATED, lin.DERIVED):
            leaks.setdefault("published_identifier", []).append(
                (label_name(manifest, source), reach)
            )
    for rule, found in leaks.items():
        found.sort(key=lambda item: (lin.RANK[item[1].label], item[0]))
        sources = ", ".join(sorted({source for source, _reach in found}))
        first = found[0][1]
        if rule == "untransformed_identifier":
            how = "as an unkeyed hash" if first.label == lin.HASHED else "unprotected"
            what = (
                "raw key (linkable to its raw row)"
                if all(source in raw_key_labels for source, _reach in found)
                else "direct identifier"
            )
            message = f"{what} {sources} reaches {zone} column {name}.{column} {how}"
            fix = "pseudonymise it ({{ pseudonymise(...) }}), generalise it, or drop the column"
        else:
            message = (
                f"direct identifier {sources} reaches the published zone ({first.label}); only "
                "aggregates of it (or flags derived from it) may be published"
            )
            fix = "aggregate it (count people) or remove the column from the published model"
        findings.append(Finding(rule, name, column, file, message, fix, _route(manifest, first)))
    if exception and not excepted:
        findings.append(
            Finding(
                "stale_raw_key_exception",
                name,
                column,
                yml,
                "declares raw_key_exception but no raw key reaches it unprotected"
                + (" (the published zone allows none)" if zone == "published" else ""),
                f"remove raw_key_exception from {name}.{column} in {yml}",
                # A source that exists only after a purge may not reach it in this build.
                warning=zone != "published",
            )
        )
    declared = verdict.declared
    declared_pii = str(declared.get("pii") or "missing")
    declared_tf = declared.get("transformation")
    example = next(
        (r for r in sorted(verdict.reaches, key=lambda x: lin.RANK[x[2].label])),
        None,
    )
    route = _route(manifest, example[2]) if example else ()
    computed_pii = verdict.computed_pii
    if declared_pii == "missing" and computed_pii == "none":
        findings.append(
            Finding(
                "meta_pii_missing",
                name,
                column,
                yml,
                "no pii classification declared (nothing personal reaches it)",
                f"add config.meta {{pii: none}} to {name}.{column} in {yml}",
                warning=True,
            )
        )
    elif declared_pii not in PII_LEVELS or PII_LEVELS.index(declared_pii) < PII_LEVELS.index(
        computed_pii
    ):
        want = f"pii: {computed_pii}"
        if verdict.computed_transformation:
            want += f", transformation: {_declared_word(verdict.computed_transformation)}"
        findings.append(
            Finding(
                "meta_pii_understated",
                name,
                column,
                yml,
                f"declared pii: {declared_pii}, computed from the SQL: {computed_pii}"
                + (
                    f" ({verdict.computed_transformation})"
                    if verdict.computed_transformation
                    else ""
                ),
                f"set config.meta {{{want}}} on {name}.{column} in {yml}, or change the SQL",
                route,
            )
        )
    elif declared_pii != computed_pii:
        findings.append(
            Finding(
                "meta_pii_overstated",
                name,
                column,
                yml,
                f"declared pii: {declared_pii}, computed from the SQL: {computed_pii}",
                f"pii: {computed_pii} would do (or the lineage misses a flow: check the SQL)",
                route,
                warning=True,
            )
        )
    computed = verdict.computed_transformation
    if computed_pii != "none" and computed:
        if declared_tf is None and computed_pii == "direct":
            findings.append(
                Finding(
                    "meta_transformation_missing",
                    name,
                    column,
                    yml,
                    f"a direct identifier reaches it ({computed}) but no transformation is declared",
                    f"add transformation: {_declared_word(computed)} to config.meta of "
                    f"{name}.{column} in {yml}",
                    route,
                )
            )
        elif declared_tf is not None and str(declared_tf) not in EQUIVALENT[computed]:
            claimed = DECLARED_RANK.get(str(declared_tf), 99)
            findings.append(
                Finding(
                    "meta_transformation_mismatch",
                    name,
                    column,
                    yml,
                    f"declared transformation: {declared_tf}, computed from the SQL: {computed}",
                    f"set transformation: {_declared_word(computed)} on {name}.{column} in {yml}, "
                    "or change the SQL",
                    route,
                    warning=claimed < lin.RANK[computed],
                )
            )
    source_column = declared.get("source_column")
    if source_column:
        # A JSON field (`privacy.subject_requests.details.value`) counts as its column.
        origins = {
            ".".join(label_name(manifest, src).split(".")[:3])
            for src, _pii, _reach in verdict.reaches
        }
        if str(source_column) not in origins and str(source_column).count(".") == 2:
            findings.append(
                Finding(
                    "meta_source_mismatch",
                    name,
                    column,
                    yml,
                    f"declared source_column {source_column} does not reach this column; "
                    f"computed personal sources: {', '.join(sorted(origins)) or 'none'}",
                    f"correct source_column of {name}.{column} in {yml}",
                )
            )
    return findings


def _declared_word(label: str) -> str:
    return {lin.SEALED: "encrypted", lin.PASSED: "normalised"}.get(label, label)


WAIVERS = Path(__file__).with_name("gate_waivers.csv")


def load_waivers(path: Path = WAIVERS) -> dict[tuple[str, str, str], str]:
    """(rule, model, column) -> reason: known findings reported to their owners, fix pending."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (row["rule"], row["model"], row["column"]): row["reason"]
            for row in csv.DictReader(handle)
        }


def apply_waivers(
    findings: Sequence[Finding], waivers: dict[tuple[str, str, str], str]
) -> list[Finding]:
    """Waived findings become warnings; a waiver that matches nothing is itself a failure."""
    result: list[Finding] = []
    used: set[tuple[str, str, str]] = set()
    for finding in findings:
        key = (finding.rule, finding.model, finding.column)
        if key in waivers and not finding.warning:
            used.add(key)
            result.append(
                replace(
                    finding, warning=True, message=f"{finding.message} [waived: {waivers[key]}]"
                )
            )
        else:
            result.append(finding)
    for key in sorted(set(waivers) - used):
        result.append(
            Finding(
                "stale_waiver",
                key[1],
                key[2],
                str(WAIVERS.relative_to(WAIVERS.parents[3])),
                f"waiver for {key[0]} matches no finding any more",
                "delete the row from the waiver file",
            )
        )
    return result


def failures(findings: Sequence[Finding]) -> list[Finding]:
    return [finding for finding in findings if not finding.warning]


def report(findings: Sequence[Finding]) -> str:
    failed = failures(findings)
    warnings = len(findings) - len(failed)
    if not failed:
        head = "privacy gate: passed (no direct identifier escapes; declared meta matches lineage)"
    else:
        head = f"privacy gate: FAILED, {len(failed)} finding(s)"
    lines = [head + (f"; {warnings} warning(s)" if warnings else "")]
    lines += [str(finding) for finding in failed]
    lines += [str(finding) for finding in findings if finding.warning]
    return "\n".join(lines)


def run(
    target: Path, waivers: dict[tuple[str, str, str], str] | None = None
) -> tuple[ProjectLineage, list[Finding]]:
    manifest, catalog = lin.load(target)
    project = lin.project_lineage(target, manifest, catalog)
    found = check(project)
    return project, apply_waivers(found, load_waivers() if waivers is None else waivers)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="cdp gate",
        description="Check computed PII lineage against zones and declared meta.",
    )
    parser.add_argument(
        "--target-path",
        type=Path,
        default=Path("target"),
        help="dbt target dir with manifest.json, catalog.json and compiled SQL (default: target)",
    )
    args = parser.parse_args(argv)
    try:
        _project, findings = run(args.target_path)
    except FileNotFoundError as exc:
        print(f"privacy gate: {exc}", file=sys.stderr)
        return 2
    print(report(findings))
    return 1 if failures(findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
