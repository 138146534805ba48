"""Build evidence: what each build proved, kept in an append-only, tamper-evident record.

    python -m cdp.evidence record [--target-path target]   after a build (cdp build does it)
    python -m cdp.evidence verify [--expect-head SEQ:HASH]  exit 1 if an entry was edited or deleted
    python -m cdp.evidence show                             the entries, one line each

One entry per build, one JSON object per line of ``evidence.jsonl`` in
``CDP_EVIDENCE_DIR`` (default ``data/evidence``; folder 0700, file 0600). It is
its own file, not a warehouse table, so neither a ``--full-refresh`` nor an
erasure rebuild can wipe it. An entry holds counts and test outcomes only,
never a pseudonym, person key or any other value of a person: when the build
ran, the git commit, ``as_of``, the key version, every privacy-relevant test
with its status and failure count, which models hold each data category,
row accounting per raw table, consent coverage per purpose, subject requests
per state and destructions per data category.

Tamper evidence is a SHA-256 hash chain: every entry carries ``seq`` (1, 2,
...), the previous entry's hash and its own hash over its canonical JSON. An
edited entry no longer matches its hash; a deleted one breaks ``seq`` and the
next entry's ``prev_hash``; a deleted last entry disagrees with
``evidence.head`` (the last seq and hash, rewritten on every append) and with
any head an auditor kept from an earlier pack (``--expect-head``; the pack
prints it on its first page). The chain is deliberately not keyed (see
docs/decisions.md): anyone can verify it without the master key, and a key
rotation leaves old entries verifiable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cdp import paths

ENV_DIR = "CDP_EVIDENCE_DIR"
LOG_NAME = "evidence.jsonl"
HEAD_NAME = "evidence.head"
FORMAT = 1
GENESIS = "0" * 64

# Generic tests that enforce a privacy rule (their name is the rule); every singular test of
# the project (tests/) is a privacy rule too, named after its file.
PRIVACY_GENERIC_TESTS = frozenset(
    {
        "within_retention",
        "consent_presence",
        "accounts_for_every_raw_row",
        "k_anonymity",
        "l_diversity",
        "no_recoverable_suppression",
        "no_overdue_requests",
    }
)
# Materialisations that store rows: an ephemeral model is a CTE and a view a query over a
# table, so neither holds data of its own (the table under it does, and is what is tested).
HOLDING = frozenset({"table", "incremental", "snapshot"})
PASSED = "pass"


class EvidenceError(Exception):
    """The evidence cannot be recorded or read as asked; the message says why."""


def evidence_dir() -> Path:
    """Where the record lives (``CDP_EVIDENCE_DIR``, default ``data/evidence``)."""
    value = os.environ.get(ENV_DIR)
    path = Path(value) if value else Path("data/evidence")
    return path if path.is_absolute() else paths.PROJECT_ROOT / path


def log_file(folder: Path | None = None) -> Path:
    return (folder or evidence_dir()) / LOG_NAME


# --------------------------------------------------------------------------- collecting


def _query(db: Path, sql: str) -> list[tuple[Any, ...]] | None:
    """Rows of ``sql`` on ``db`` opened read-only; None when the file or relation is missing."""
    if not db.is_file():
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return [tuple(row) for row in con.execute(sql).fetchall()]
    except duckdb.Error:
        return None
    finally:
        con.close()


def git_commit(root: Path | None = None) -> str | None:
    """The checked-out commit (with ``-dirty`` if the tree has changes), or None outside git."""
    where = str(root or paths.PROJECT_ROOT)
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def _privacy_rule(node: dict[str, Any]) -> str | None:
    generic = (node.get("test_metadata") or {}).get("name")
    if generic:
        return str(generic) if generic in PRIVACY_GENERIC_TESTS else None
    return str(node["name"])  # a singular test


def _mixed_categories(node: dict[str, Any], warehouse: Path) -> list[str]:
    """The categories a mixed model holds: declared in meta, or else read from the build."""
    meta = node.get("config", {}).get("meta") or {}
    declared = meta.get("data_categories")
    if declared:
        return sorted(str(c) for c in declared)
    column = str(meta["data_category_column"])
    schema, alias = str(node.get("schema", "")), str(node.get("alias") or node.get("name", ""))
    if not all(part.isidentifier() for part in (column, schema, alias)):
        return []
    # Schema and table only: the database name is the warehouse file's, whatever it is called.
    rows = _query(
        warehouse,
        f'select distinct "{column}" from "{schema}"."{alias}" where "{column}" is not null',
    )
    return sorted(str(r[0]) for r in rows or [])


def retention_holders(manifest: dict[str, Any], warehouse: Path) -> dict[str, list[str]]:
    """Data category -> the models holding rows of it (ephemeral models hold none)."""
    holders: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model":
            continue
        if node.get("config", {}).get("materialized") not in HOLDING:
            continue
        meta = node.get("config", {}).get("meta") or {}
        if meta.get("data_category"):
            categories = [str(meta["data_category"])]
        elif meta.get("data_category_column"):
            categories = _mixed_categories(node, warehouse)
        else:
            continue
        for category in categories:
            holders.setdefault(category, set()).add(str(node["name"]))
    return {c: sorted(models) for c, models in sorted(holders.items())}


def _test_categories(
    node: dict[str, Any], model: dict[str, Any] | None, holders: dict[str, list[str]]
) -> list[str]:
    kwargs = (node.get("test_metadata") or {}).get("kwargs") or {}
    if kwargs.get("data_category"):
        return [str(kwargs["data_category"])]
    meta = (model or {}).get("config", {}).get("meta") or {}
    if meta.get("data_category") and not kwargs.get("data_category_column"):
        return [str(meta["data_category"])]
    name = (model or {}).get("name")
    return sorted(c for c, models in holders.items() if name in models)


def privacy_tests(
    run_results: dict[str, Any], manifest: dict[str, Any], holders: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Every privacy-relevant test the run executed, with its outcome (ids and counts only)."""
    nodes = manifest["nodes"]
    tests = []
    for result in run_results.get("results", []):
        node = nodes.get(result["unique_id"])
        if node is None or node.get("resource_type") != "test":
            continue
        rule = _privacy_rule(node)
        if rule is None:
            continue
        attached = node.get("attached_node")
        model = nodes.get(attached) if attached else None
        entry: dict[str, Any] = {
            "test": str(node["name"]),
            "rule": rule,
            "model": str(model["name"]) if model else None,
            "status": str(result["status"]),
            "failures": int(result.get("failures") or 0),
        }
        if rule == "within_retention":
            entry["categories"] = _test_categories(node, model, holders)
        tests.append(entry)
    return sorted(tests, key=lambda t: (t["rule"], t["model"] or "", t["test"]))


def _counts(run_results: dict[str, Any]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for result in run_results.get("results", []):
        kind = str(result["unique_id"]).split(".", 1)[0]
        key = (kind, str(result["status"]))
        counts[key] = counts.get(key, 0) + 1
    return [{"kind": k, "status": s, "count": n} for (k, s), n in sorted(counts.items())]


def _as_of(warehouse: Path) -> str | None:
    rows = _query(warehouse, "select max(as_of) from intermediate.int_consent__person_purposes")
    if not rows or rows[0][0] is None:
        return None
    value = rows[0][0]
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)


def _key_version(warehouse: Path) -> str | None:
    rows = _query(
        warehouse, "select distinct key_version from staging.stg_crm__customers_triaged order by 1"
    )
    if rows:
        return ",".join(str(r[0]) for r in rows if r[0] is not None) or None
    from cdp import keys

    try:
        return f"v{keys.key_version()}"
    except keys.KeyConfigError:
        return None


def row_accounting(warehouse: Path) -> list[dict[str, Any]] | None:
    rows = _query(
        warehouse,
        "select source_table, sum(raw_rows), sum(kept_rows), sum(duplicate_rows), "
        "sum(superseded_rows), sum(quarantined_rows) from audit.audit_row_accounting "
        "group by 1 order by 1",
    )
    if rows is None:
        return None
    names = ("raw", "kept", "duplicate", "superseded", "quarantined")
    return [
        {"source_table": str(r[0]), **{n: int(v or 0) for n, v in zip(names, r[1:], strict=True)}}
        for r in rows
    ]


def _consent(warehouse: Path) -> list[dict[str, Any]] | None:
    rows = _query(
        warehouse,
        "select purpose_code, count(distinct person_key), "
        "count(distinct person_key) filter (where is_permitted) "
        "from intermediate.int_consent__person_purposes group by 1 order by 1",
    )
    if rows is None:
        return None
    return [{"purpose": str(r[0]), "persons": int(r[1]), "permitted": int(r[2])} for r in rows]


def _requests(warehouse: Path) -> list[dict[str, Any]] | None:
    rows = _query(
        warehouse,
        "select request_type, count(*), count(*) filter (where is_open), "
        "count(*) filter (where is_overdue), count(*) filter (where not is_open) "
        "from intermediate.int_rights__request_tracking group by 1 order by 1",
    )
    if rows is None:
        return None
    names = ("received", "open", "overdue", "closed")
    return [
        {"request_type": str(r[0]), **{n: int(v or 0) for n, v in zip(names, r[1:], strict=True)}}
        for r in rows
    ]


def _destructions(raw: Path) -> list[dict[str, Any]] | None:
    rows = _query(
        raw,
        "select data_category, reason, count(*), sum(row_count) from audit.destruction_log "
        "group by 1, 2 order by 1, 2",
    )
    if rows is None:
        # No purge has run yet (the log does not exist) or the raw zone is missing.
        return [] if raw.is_file() else None
    return [
        {
            "data_category": str(r[0]),
            "reason": str(r[1]),
            "records": int(r[2]),
            "rows": int(r[3] or 0),
        }
        for r in rows
    ]


def _targets(target: Path | Sequence[Path]) -> list[Path]:
    return [target] if isinstance(target, Path) else list(target)


def collect(
    target: Path | Sequence[Path],
    *,
    warehouse: Path | None = None,
    raw: Path | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """The evidence of the build whose artefacts are in ``target`` (not yet chained).

    A build run in stages (each its own dbt invocation and target dir) is one entry: give
    every stage's target dir; their results are taken together, the last one's manifest.
    """
    warehouse = warehouse or paths.warehouse_db()
    raw = raw or paths.raw_db()
    runs: list[dict[str, Any]] = []
    try:
        for folder in _targets(target):
            runs.append(json.loads((folder / "run_results.json").read_text(encoding="utf-8")))
        manifest = json.loads((_targets(target)[-1] / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvidenceError(f"{exc.filename} is missing: run a build first") from None
    if not runs:
        raise EvidenceError("no target dir given")
    run_results = {"results": [r for run in runs for r in run.get("results", [])]}
    metadata = [run.get("metadata", {}) for run in runs]
    holders = retention_holders(manifest, warehouse)
    return {
        "format": FORMAT,
        "built_at": str(metadata[-1].get("generated_at", "")),
        "invocation_id": ",".join(str(m.get("invocation_id", "")) for m in metadata),
        "command": ",".join(str((run.get("args") or {}).get("which", "")) for run in runs),
        "commit": commit if commit is not None else git_commit(),
        "as_of": _as_of(warehouse),
        "key_version": _key_version(warehouse),
        "results": _counts(run_results),
        "privacy_tests": privacy_tests(run_results, manifest, holders),
        "retention_holders": holders,
        "row_accounting": row_accounting(warehouse),
        "consent": _consent(warehouse),
        "requests": _requests(warehouse),
        "destructions": _destructions(raw),
    }


# --------------------------------------------------------------------------- the chain


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def _secure_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _write_private(file: Path, text: str) -> None:
    """Replace ``file`` with ``text`` atomically, owner-only."""
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, file)


def read_entries(folder: Path | None = None) -> list[dict[str, Any]]:
    file = log_file(folder)
    if not file.is_file():
        return []
    entries = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise EvidenceError(f"{file}: line {number} is not JSON (edited?)") from None
        if not isinstance(entry, dict):
            raise EvidenceError(f"{file}: line {number} is not an entry (edited?)")
        entries.append(entry)
    return entries


def append(evidence: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """Chain ``evidence`` to the record and append it (the record is verified first)."""
    folder = folder or evidence_dir()
    _secure_folder(folder)
    lock = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds appending at once take turns
        return _append_locked(evidence, folder)
    finally:
        os.close(lock)


def _append_locked(evidence: dict[str, Any], folder: Path) -> dict[str, Any]:
    problems = verify(folder)
    if problems:
        raise EvidenceError(
            "the evidence record does not verify, nothing appended: " + "; ".join(problems[:3])
        )
    entries = read_entries(folder)
    last = entries[-1] if entries else None
    entry = {
        **evidence,
        "seq": int(last["seq"]) + 1 if last else 1,
        "prev_hash": str(last["hash"]) if last else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    file = log_file(folder)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(canonical(entry).decode() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(file, 0o600)
    _write_private(folder / HEAD_NAME, f"{entry['seq']}:{entry['hash']}\n")
    return entry


def head(folder: Path | None = None) -> str | None:
    """``SEQ:HASH`` of the last entry, as recorded beside the log."""
    file = (folder or evidence_dir()) / HEAD_NAME
    return file.read_text(encoding="utf-8").strip() if file.is_file() else None


def verify(folder: Path | None = None, *, expect_head: str | None = None) -> list[str]:
    """Every way the record disagrees with its own chain (empty when it verifies)."""
    folder = folder or evidence_dir()
    try:
        entries = read_entries(folder)
    except EvidenceError as exc:
        return [str(exc)]
    problems: list[str] = []
    previous = GENESIS
    for position, entry in enumerate(entries, start=1):
        seq = entry.get("seq")
        if seq != position:
            problems.append(f"entry {position} has seq {seq}: an entry was deleted or inserted")
        if entry.get("prev_hash") != previous:
            problems.append(f"entry seq {seq} does not follow the entry before it (chain broken)")
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"entry seq {seq} was edited: its hash does not match its content")
        previous = str(entry.get("hash"))
    recorded = head(folder)
    last = f"{entries[-1].get('seq')}:{entries[-1].get('hash')}" if entries else None
    if recorded is not None and recorded != last:
        problems.append(f"the head file says {recorded}, the log ends at {last}: entries deleted")
    if recorded is None and entries:
        problems.append("the head file is missing")
    if expect_head is not None:
        seq_text, _, digest = expect_head.partition(":")
        index = int(seq_text) if seq_text.isdigit() else 0
        if not 1 <= index <= len(entries) or entries[index - 1].get("hash") != digest:
            problems.append(f"the expected head {expect_head} is not in the record")
    return problems


def record(
    target: Path | Sequence[Path],
    *,
    folder: Path | None = None,
    warehouse: Path | None = None,
    raw: Path | None = None,
    since: float | None = None,
) -> dict[str, Any]:
    """Collect the evidence of the build in ``target`` (or its stages' dirs) and append it.

    ``since`` (a time.time()) refuses run results older than the build that just ran.
    """
    for folder_ in _targets(target):
        results = folder_ / "run_results.json"
        if since is not None and results.is_file() and results.stat().st_mtime < since - 1:
            raise EvidenceError(f"{results} predates this build: dbt wrote no results")
    return append(collect(target, warehouse=warehouse, raw=raw), folder)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Verdict:
    """Whether every privacy rule held in one build, and the counts behind it."""

    tests: int
    passed: int
    warned: int
    failed: int

    @property
    def held(self) -> bool:
        return self.tests > 0 and self.passed == self.tests


def verdict(entry: dict[str, Any]) -> Verdict:
    statuses = [str(t["status"]) for t in entry.get("privacy_tests", [])]
    return Verdict(
        tests=len(statuses),
        passed=statuses.count(PASSED),
        warned=statuses.count("warn"),
        failed=sum(1 for s in statuses if s not in (PASSED, "warn")),
    )


def rule_outcomes(entry: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Privacy rule -> status -> number of its tests with that status."""
    outcomes: dict[str, dict[str, int]] = {}
    for test in entry.get("privacy_tests", []):
        counts = outcomes.setdefault(str(test["rule"]), {})
        counts[str(test["status"])] = counts.get(str(test["status"]), 0) + 1
    return outcomes


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdp evidence",
        description="The build evidence record: append-only, hash-chained, no personal data "
        f"(in {ENV_DIR}, default data/evidence).",
    )
    parser.add_argument("--dir", type=Path, help=f"the evidence folder (default: ${ENV_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="append the evidence of the last build")
    rec.add_argument(
        "--target-path",
        type=Path,
        nargs="+",
        default=[paths.PROJECT_ROOT / "target"],
        help="dbt target dir of the build, or one per stage of a staged build (default: target)",
    )
    ver = sub.add_parser("verify", help="exit 1 if an entry was edited or deleted")
    ver.add_argument("--expect-head", help="SEQ:HASH an auditor kept (the pack's first page)")
    sub.add_parser("show", help="one line per entry")
    args = parser.parse_args(argv)
    folder = args.dir.resolve() if args.dir else evidence_dir()
    try:
        if args.command == "record":
            entry = record(args.target_path, folder=folder)
            print(f"cdp evidence: recorded entry {entry['seq']} ({entry['hash'][:16]}) in {folder}")
            return 0
        if args.command == "verify":
            problems = verify(folder, expect_head=args.expect_head)
            for problem in problems:
                print(f"cdp evidence: {problem}", file=sys.stderr)
            count = len(read_entries(folder)) if not problems else 0
            print("cdp evidence: " + ("FAILED" if problems else f"verified, {count} entries"))
            return 1 if problems else 0
        for entry in read_entries(folder):
            v = verdict(entry)
            print(
                f"{entry.get('seq')} {entry.get('built_at')} commit {entry.get('commit')} "
                f"as_of {entry.get('as_of')} key {entry.get('key_version')}: "
                f"{v.passed}/{v.tests} privacy tests passed, {v.warned} warned, {v.failed} failed"
            )
        return 0
    except EvidenceError as exc:
        print(f"cdp evidence: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
