#!/usr/bin/env python3
"""Benchmark the whole warehouse build at several scales and write docs/performance.md.

    .venv/bin/python scripts/bench_build.py --scales 10000,100000,1000000
    .venv/bin/python scripts/bench_build.py --scales 10000 --out-dir /tmp/bench --no-hmac

For each scale (number of synthetic customers, with their events, orders and
messages in the generator's proportions) the script, each step in a process of
its own so that its peak memory is its own:

  1. generates the landing zone (scripts/generate_landing.py, batch 1);
  2. times `dbt parse` with partial parsing off (dbt's own start-up cost);
  3. runs the full build at a fixed as_of as `cdp build` runs it: the privacy,
     analytics and vault stages (cdp.stages), at the profile's threads (2);
  4. reruns the heavy models alone (`dbt run --full-refresh --threads 1`, stage
     by stage): a node's time in a 2-thread build includes the time it shared
     the cores with another node, its time alone does not;
  5. measures each heavy model's floors on the connection of the stage that
     builds it (`dbt run-operation bench_floors`: the same DuckDB file,
     memory_limit, threads and registered functions as the build): (a) the
     copy floor, `create table as select * from <its main input>`; (b) the keyed
     floor, the copy plus the keyed values the model must compute, through the
     plugin's own functions (the key taken from the environment as the build
     takes it; no key in any SQL text or file); then builds the slowest heavy
     model alone of each stage once more under `explain analyze` on its connection
     (`dbt run-operation bench_profile`), keeping of each operator only its
     type, join, table, join conditions, rows and seconds;
  6. generates batch 2, about 1% of the customers, and runs the build again
     (the daily increment), starting from the full build's partial-parse state
     (its target's partial_parse.msgpack), as a user's second `cdp build` in the
     same target/ does. Each build's own parse time comes from dbt's
     perf_info.json: a full parse for the first build, a partial one for the
     increment.

Heavy models: those of HEAVY_MODELS and the HEAVIEST slowest models of the full
build. A floor above its model's time alone means the floor is wrong (not a
lower bound of that model's work): the page says so beside it.

Results accumulate in <out-dir>/performance.json (one entry per scale, the
latest run of each scale wins) and <out-dir>/performance.md is rewritten from it
after each scale, so a failed scale leaves a page with what was measured and
says what failed. Each scale records the commit it ran at; the script refuses
to write into docs/ from a tree with uncommitted changes (--allow-dirty writes
anyway and marks the page). A benchmark, not a test: the figures depend on the
machine and on what else it is doing, which the page records (load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb

try:
    from cdp import paths
except ModuleNotFoundError:  # run without the package installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cdp import paths

ROOT: Final = paths.PROJECT_ROOT
DOCS: Final = ROOT / "docs"
REFERENCE_DATE: Final = "2026-11-01"
SEED: Final = 42
#: The slowest models of the full build that join HEAVY_MODELS as heavy models.
HEAVIEST: Final = 10
#: Heavy by name (issue 18): measured at every scale even when faster than others.
HEAVY_MODELS: Final = (
    "stg_web__events_triaged",
    "stg_messaging__message_events_triaged",
    "stg_shop__orders_triaged",
    "stg_crm__customers_triaged",
    "vault_identifiers",
    "int_identity_nodes",
    "int_identity_edges",
    "fct_profile_events",
    "dim_customer_profile",
)
#: The operators of a profile the page shows (the slowest first).
PROFILE_OPERATORS: Final = 6
#: The only fields of a DuckDB plan the profiles keep (macros/bench/bench_profile.sql).
PROFILE_FIELDS: Final = frozenset(
    {"depth", "type", "join", "table", "conditions", "rows", "seconds"}
)
#: How often a long step reports its progress (seconds).
PROGRESS_EVERY: Final = 20.0
FLOOR_SCHEMA: Final = "cdp_bench_floors"
_KEYED_FUNCTIONS: Final = re.compile(r"\bcdp_(pseudonym_\w+|vault_seal)\s*\(")

# Runs a command and reports its peak resident memory: RUSAGE_CHILDREN of a
# process whose only child is the command is the command's own peak.
_WRAPPER: Final = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'__PEAK_RSS_KB__ {peak}', file=sys.stderr, flush=True)\n"
    "sys.exit(code)\n"
)


class StepFailed(Exception):
    """A measured step failed; the message names it and ends with its output."""


@dataclass
class Step:
    """One measured process: wall time, peak memory, its output and the load while it ran."""

    seconds: float
    peak_mb: float
    output: str
    load_start: float
    load_max: float
    #: The highest resident memory of the command and every process under it, sampled each
    #: second (``measured(tree=True)``; NaN otherwise): a Spark build's JVM is a process the
    #: command starts and never waits for, so RUSAGE_CHILDREN does not see it.
    tree_peak_mb: float = float("nan")


def _log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


_PROGRESS_LINE: Final = re.compile(r"\b(\d+) of (\d+) (START|OK|PASS|ERROR|FAIL|WARN|SKIP)")
_TARGET_LINE: Final = re.compile(r"target='(\w+)'|Concurrency: \d+ threads? \(target='(\w+)'\)")


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of process ``root`` and every process under it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # pid (comm) state ppid ...: comm may hold spaces and brackets, so split after the last ')'
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total_kb, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024


def measured(
    command: Sequence[str], env: Mapping[str, str], label: str, *, tree: bool = False
) -> Step:
    """Run ``command``, reporting progress every PROGRESS_EVERY seconds; StepFailed if it fails.
    ``tree``: also sample the resident memory of its whole process tree each second."""
    started = time.perf_counter()
    load_start = load_average()
    process = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *command],
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    state = {"done": "", "target": ""}
    load_max = load_start

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = _PROGRESS_LINE.search(line)
            if match and match.group(3) != "START":
                state["done"] = f"{match.group(1)}/{match.group(2)}"
            target = _TARGET_LINE.search(line)
            if target:
                state["target"] = target.group(1) or target.group(2)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    last = started
    tree_peak = 0.0
    while reader.is_alive():
        reader.join(timeout=1.0)
        load_max = max(load_max, load_average())
        if tree:
            tree_peak = max(tree_peak, tree_rss_mb(process.pid))
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY and reader.is_alive():
            last = now
            where = f", {state['target']} stage {state['done']} nodes" if state["done"] else ""
            _log(f"  ... {label}: {now - started:,.0f} s{where}, load {load_average()}")
    code = process.wait()
    seconds = time.perf_counter() - started
    output = "".join(lines)
    match = re.search(r"__PEAK_RSS_KB__ (\d+)", output)
    if code != 0:
        raise StepFailed(f"{label} failed (exit {code}): {' '.join(command)}\n{output[-4000:]}")
    return Step(
        seconds,
        int(match.group(1)) / 1024 if match else float("nan"),
        output,
        load_start,
        load_max,
        tree_peak if tree else float("nan"),
    )


# --------------------------------------------------------------------------- git


def git_state(root: Path = ROOT) -> tuple[str, list[str]]:
    """The commit HEAD is at, and the files that differ from it (tracked or not ignored)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=normal"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return commit, [line[3:] for line in status.splitlines() if line.strip()]


def dirty_refusal(changed: Sequence[str], out_dir: Path, *, allow_dirty: bool) -> str | None:
    """Why the page must not be written (into docs/, from a tree with changes), or None."""
    if not changed or allow_dirty or out_dir.resolve() != DOCS.resolve():
        return None
    shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    return (
        f"bench_build: the tree has uncommitted changes ({shown}): commit them first, so that "
        "the page names the code it measured, or pass --allow-dirty (the page then says so), "
        "or --out-dir elsewhere"
    )


# --------------------------------------------------------------------------- dbt runs


def dbt_env(scale_dir: Path, key: str | None = None) -> dict[str, str]:
    """The environment of one scale: its own files and ``key`` (default: a fresh random key),
    handed to each step in its environment, as a user hands it to `cdp build`."""
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "CDP_MASTER_KEY": key or secrets.token_urlsafe(48),
        "CDP_RAW_DB": str(scale_dir / "raw.duckdb"),
        "CDP_WAREHOUSE_DB": str(scale_dir / "warehouse.duckdb"),
        "CDP_VAULT_DB": str(scale_dir / "vault.duckdb"),
        "CDP_TRUTH_DB": str(scale_dir / "truth.duckdb"),
        "CDP_EVIDENCE_DIR": str(scale_dir / "evidence"),
        "CDP_PUBLISHED_DIR": str(scale_dir / "published"),
        "CDP_QUALITY_REPORT_DIR": str(scale_dir / "quality"),
    }
    for name in ("CDP_MASTER_KEY_FILE", "CDP_TARGET", "DBT_TARGET_PATH"):
        env.pop(name, None)
    return env


def staged(*args: str, target: Path) -> list[str]:
    """This script's own ``_dbt`` command: ``dbt <args>`` run stage by stage as cdp build does."""
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "_dbt",
        *args,
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
    ]


def _run_staged(argv: Sequence[str]) -> int:
    """``_dbt``: the key taken from the environment as ``cdp build`` takes it, then cdp.stages."""
    from cdp import stages

    args, extra = list(argv), []
    for flag in ("--target-path", "--log-path"):
        if flag in args:
            i = args.index(flag)
            extra += args[i : i + 2]
            del args[i : i + 2]
    outcome = stages.run(args, extra=extra)  # takes CDP_MASTER_KEY out of os.environ first
    if not outcome.success:
        print("\n".join(outcome.messages[-20:]), file=sys.stderr)
    return 0 if outcome.success else 1


def _run_floors(plan_file: str, out_file: str, target_path: str) -> int:
    """``_floors``: each target's floors in one ``dbt run-operation bench_floors`` on that target.

    The key is taken out of the environment the way cdp.stages takes it and held in memory for
    the plugin; the floors' SQL holds only function and column names.
    """
    import contextlib

    from cdp import dbt_invoke, keys

    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    master = keys.take_master_key()
    results: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    errors: dict[str, str] = {}
    profiles: list[dict[str, Any]] = []
    operations = [("bench_floors", "floors", t, f) for t, f in plan["targets"].items()]
    operations += [("bench_profile", "statements", t, p) for t, p in plan["profiles"].items()]
    for macro, argument, target, statements in operations:
        with contextlib.ExitStack() as stack:
            if target != "local":
                stack.enter_context(keys.holding(master))
            outcome = dbt_invoke.invoke(
                [
                    "run-operation",
                    macro,
                    "--args",
                    json.dumps({argument: statements, "schema": FLOOR_SCHEMA}),
                    "--target",
                    target,
                    "--vars",
                    json.dumps(plan["vars"]),
                ],
                extra=[
                    "--target-path",
                    str(Path(target_path) / target),
                    "--log-path",
                    str(Path(target_path) / target / "logs"),
                ],
                echo=False,
            )
        if not outcome.success:  # the other targets' floors are still measured
            print(outcome.output[-4000:], file=sys.stderr)
            errors[f"{target} ({macro})"] = (
                outcome.output.strip().splitlines()[-1][:300] if outcome.output else "failed"
            )
        for message in outcome.messages:
            if message.startswith("cdp_bench_floor "):
                results.append(json.loads(message.removeprefix("cdp_bench_floor ")))
            elif message.startswith("cdp_bench_settings "):
                settings[target] = json.loads(message.removeprefix("cdp_bench_settings "))
            elif message.startswith("cdp_bench_profile "):
                profiles.append(json.loads(message.removeprefix("cdp_bench_profile ")))
        print(f"{target}: {len(statements)} {argument}", flush=True)
    out = {"floors": results, "settings": settings, "errors": errors, "profiles": profiles}
    Path(out_file).write_text(json.dumps(out, indent=2))
    return 0


# --------------------------------------------------------------------------- dbt's results


def _stage_dirs(target: Path) -> list[Path]:
    """Where each stage wrote its run_results (privacy, analytics, vault), those that ran."""
    return [
        d
        for d in (target / "privacy", target, target / "vault")
        if (d / "run_results.json").exists()
    ]


def _interval(result: Mapping[str, Any]) -> tuple[float, float] | None:
    for timing in result.get("timing") or ():
        if (
            timing.get("name") == "execute"
            and timing.get("started_at")
            and timing.get("completed_at")
        ):
            start = datetime.fromisoformat(str(timing["started_at"]).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(timing["completed_at"]).replace("Z", "+00:00"))
            return start.timestamp(), end.timestamp()
    return None


def overlapped_seconds(intervals: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """For each node, the seconds of its execution during which another node also ran."""
    out: dict[str, float] = {}
    items = sorted(intervals.items(), key=lambda item: item[1][0])
    for name, (start, end) in items:
        others = sorted(
            (max(s, start), min(e, end))
            for other, (s, e) in items
            if other != name and s < end and e > start
        )
        covered, reach = 0.0, start
        for s, e in others:
            if e <= reach:
                continue
            covered += e - max(s, reach)
            reach = e
        out[name] = covered
    return out


def critical_path(
    seconds: Mapping[str, float], parents: Mapping[str, Iterable[str]]
) -> tuple[float, list[str]]:
    """The longest chain of ``seconds`` through ``parents`` (a DAG; nodes outside ``seconds``
    ran earlier, in another stage), and its nodes in order."""
    finish: dict[str, float] = {}
    via: dict[str, str] = {}

    running: set[str] = set()

    def visit(node: str) -> float:
        if node not in finish:
            running.add(node)  # an edge back into the chain being visited is ignored
            ready = [
                (visit(p), p) for p in parents.get(node, ()) if p in seconds and p not in running
            ]
            running.discard(node)
            start, parent = max(ready, default=(0.0, ""))
            finish[node] = start + seconds[node]
            if parent:
                via[node] = parent
        return finish[node]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * len(seconds) + 1000))
    for node in seconds:
        visit(node)
    if not finish:
        return 0.0, []
    last = max(finish, key=lambda n: finish[n])
    total, chain = finish[last], [last]
    while last in via:
        last = via[last]
        chain.append(last)
    return total, chain[::-1]


def build_parents(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """What each node waits for in `dbt build`: its parents, and the single-model tests of its
    parents."""
    nodes = manifest["nodes"]
    tests_of: dict[str, list[str]] = {}
    for uid, node in nodes.items():
        # A test of one model blocks the model's children (a test of several runs after
        # all of them, and may itself read a child: no edge, no cycle).
        tested = node.get("depends_on", {}).get("nodes", [])
        if node["resource_type"] == "test" and len(tested) == 1:
            tests_of.setdefault(tested[0], []).append(uid)
    parents: dict[str, list[str]] = {}
    for uid, node in nodes.items():
        direct = list(node.get("depends_on", {}).get("nodes", []))
        if node["resource_type"] != "test":
            direct += [t for p in direct for t in tests_of.get(p, []) if t != uid]
        parents[uid] = direct
    return parents


def read_parse(target: Path) -> dict[str, Any] | None:
    """The build's own parse (cdp.stages parses once, into the build's target path): seconds and
    how many of the project's files dbt parsed again (all of them without a partial-parse state;
    those that changed with one), from dbt's perf_info.json."""
    perf = target / "perf_info.json"
    if not perf.exists():
        return None
    info = json.loads(perf.read_text())
    return {
        "seconds": round(float(info.get("load_all_elapsed") or 0.0), 2),
        "files": int(info.get("path_count") or 0),
        "parsed_files": int(info.get("parsed_path_count") or 0),
    }


def keep_partial_parse(previous: Path, target: Path) -> bool:
    """Start the build under ``target`` from the partial-parse state the build under
    ``previous`` left (a user's builds share one target/); False when it left none."""
    state = previous / "partial_parse.msgpack"
    if not state.exists():
        return False
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state, target / "partial_parse.msgpack")
    return True


def read_build(step: Step, target: Path) -> dict[str, Any]:
    """One build: wall time, memory, dbt's elapsed time per stage, node times, critical path,
    its own parse."""
    manifest = json.loads((target / "manifest.json").read_text())
    parents = build_parents(manifest)
    stages: list[dict[str, Any]] = []
    nodes: dict[str, dict[str, Any]] = {}
    critical_total, chain_all = 0.0, []
    for stage_dir in _stage_dirs(target):
        results = json.loads((stage_dir / "run_results.json").read_text())
        seconds = {r["unique_id"]: float(r["execution_time"]) for r in results["results"]}
        intervals = {
            uid: iv for r in results["results"] if (iv := _interval(r)) for uid in [r["unique_id"]]
        }
        overlap = overlapped_seconds(intervals)
        total, chain = critical_path(seconds, parents)
        critical_total += total
        chain_all += chain
        name = {"privacy": "privacy", "vault": "vault"}.get(stage_dir.name, "analytics")
        stages.append(
            {
                "stage": name,
                "elapsed": round(float(results["elapsed_time"]), 1),
                "node_seconds": round(sum(seconds.values()), 1),
                "critical_path": round(total, 1),
                "nodes": len(seconds),
            }
        )
        for uid, secs in seconds.items():
            nodes[uid] = {"seconds": secs, "overlapped": overlap.get(uid, 0.0), "stage": name}
    models = sorted(
        (uid for uid in nodes if uid.startswith("model.")),
        key=lambda uid: nodes[uid]["seconds"],
        reverse=True,
    )
    threads = re.findall(r"Concurrency: (\d+) threads?", step.output)
    heavy_chain = sorted(chain_all, key=lambda uid: nodes[uid]["seconds"], reverse=True)[:5]
    return {
        "seconds": round(step.seconds, 1),
        "peak_mb": round(step.peak_mb),
        "dbt_elapsed": round(sum(s["elapsed"] for s in stages), 1),
        "node_seconds": round(sum(n["seconds"] for n in nodes.values()), 1),
        "nodes": len(nodes),
        "threads": sorted({int(t) for t in threads}),
        "parse": read_parse(target),
        "tests": sum(1 for uid in nodes if uid.startswith(("test.", "unit_test."))),
        "test_seconds": round(
            sum(
                n["seconds"] for uid, n in nodes.items() if uid.startswith(("test.", "unit_test."))
            ),
            1,
        ),
        "critical_path": round(critical_total, 1),
        "critical_path_nodes": len(chain_all),
        "critical_path_heaviest": [
            {"node": manifest["nodes"][uid]["name"], "seconds": round(nodes[uid]["seconds"], 2)}
            for uid in heavy_chain
        ],
        "stages": stages,
        "load_start": step.load_start,
        "load_max": step.load_max,
        "models": {
            manifest["nodes"][uid]["name"]: {
                "seconds": round(nodes[uid]["seconds"], 2),
                "overlapped": round(nodes[uid]["overlapped"], 2),
                "stage": nodes[uid]["stage"],
                "materialized": manifest["nodes"][uid]["config"]["materialized"],
            }
            for uid in models
        },
    }


def model_seconds(target: Path) -> dict[str, float]:
    """Each model's execution time in the run under ``target`` (every stage)."""
    out: dict[str, float] = {}
    for stage_dir in _stage_dirs(target):
        for r in json.loads((stage_dir / "run_results.json").read_text())["results"]:
            if r["unique_id"].startswith("model.") and r["status"] == "success":
                out[r["unique_id"].split(".")[-1]] = float(r["execution_time"])
    return out


# --------------------------------------------------------------------------- floors


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class KeyedValue:
    """One keyed value a model must compute: a pseudonym of ``value`` typed by ``id_type``."""

    domain: str
    id_type: str  # SQL: a literal or a column of the input
    value: str  # SQL: a column of the input
    label: str


def landing_keyed_values(table: Any) -> list[KeyedValue]:
    """The pseudonyms a triaged staging model computes for every raw row of ``table``: its raw
    keys (decision 50) and identifier columns, as the sources' metadata declares them."""
    found: list[KeyedValue] = []
    for column in table.columns:
        name = _quote(column.name)
        if column.raw_key:
            found.append(KeyedValue("identity", _literal(column.name), name, column.name))
        elif column.identifier_type:
            found.append(
                KeyedValue("identity", _literal(column.identifier_type), name, column.name)
            )
        elif column.identifier_type_column:
            found.append(
                KeyedValue("identity", _quote(column.identifier_type_column), name, column.name)
            )
        elif column.identifier_type_by_channel:
            found.append(
                KeyedValue("identity", _quote(column.identifier_type_by_channel), name, column.name)
            )
    return found


def vault_identifier_input(tables: Iterable[Any], relations: Mapping[str, str]) -> str:
    """Every distinct (id type, value) of the landing zone's identifier columns (vault: true):
    what vault_identifiers reads, before normalising."""
    parts: list[str] = []
    for table in tables:
        relation = relations.get(table.qualified)
        if relation is None:
            continue
        for column in table.columns:
            if not column.is_identifier or not column.meta.get("vault", True):
                continue
            id_type = (
                _literal(column.identifier_type)
                if column.identifier_type
                else _quote(
                    column.identifier_type_column or column.identifier_type_by_channel or ""
                )
            )
            parts.append(
                f"select distinct cast({id_type} as varchar) as id_type, "
                f"cast({_quote(column.name)} as varchar) as id_value from {relation}"
            )
    union = " union all ".join(parts) or "select null as id_type, null as id_value"
    return (
        f"(select distinct id_type, id_value from ({union}) as identifiers "
        "where id_type is not null and id_value is not null)"
    )


def stage_target(tags: Iterable[str]) -> str:
    tags = set(tags)
    return "vault" if "vault_stage" in tags else "privacy" if "privacy_stage" in tags else "local"


def plan_floors(
    models: Sequence[str],
    manifest: Mapping[str, Any],
    row_counts: Mapping[str, int | None],
    compiled: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Per heavy model: its main input, the floors' SQL and the target they run on.

    The main input of a triaged staging model is its landing table and its keyed values are the
    pseudonyms the sources' metadata asks for (cdp.sources, one place); vault_identifiers reads
    the distinct identifiers of every landing table and pseudonymises and seals each one; any
    other model's main input is its largest input relation (:func:`input_relations`: an
    ephemeral parent's inputs are the model's), and its keyed floor is its copy floor when its
    compiled SQL calls no keyed function (otherwise it is not derived).
    """
    from cdp import sources

    landing = {t.staging_model: t for t in sources.landing_tables(ROOT)}
    source_relations = {
        f"{s['schema']}.{s['name']}": s["relation_name"]
        for s in manifest["sources"].values()
        if s.get("relation_name")
    }
    by_name = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    plans: list[dict[str, Any]] = []
    for name in models:
        node = by_name.get(name)
        if node is None:
            continue
        plan: dict[str, Any] = {
            "model": name,
            "target": stage_target(node.get("tags", ())),
            "notes": [],
        }
        if name == "vault_identifiers":
            plan["input"] = "distinct identifiers of the landing zone"
            relation = vault_identifier_input(sources.landing_tables(ROOT), source_relations)
            plan["copy"] = f"select * from {relation} as input"
            plan["keyed"] = (
                "select *, cdp_pseudonym_identity(id_type, id_value) as floor_pseudonym, "
                "cdp_vault_seal('vault_identifiers', cdp_pseudonym_identity(id_type, id_value), "
                f"id_type, id_value) as floor_sealed from {relation} as input"
            )
            plan["keyed_values"] = ["pseudonym(id_type, id_value)", "sealed value"]
            plans.append(plan)
            continue
        parents = []
        for parent, through in input_relations(node, manifest):
            rows = row_counts.get(parent["relation_name"])
            if rows is not None:  # None: not readable (a log a purge has not written yet)
                parents.append((rows, parent, through))
        if not parents:
            plan["notes"].append("no readable parent relation to copy")
            plans.append(plan)
            continue
        rows, parent, through = max(parents, key=lambda p: p[0])
        relation = parent["relation_name"]
        plan["input"] = (
            f"{parent['source_name']}.{parent['name']}"
            if parent["resource_type"] == "source"
            else parent["name"]
        )
        if through:
            plan["input"] += f" (through {', '.join(through)})"
        plan["input_rows"] = rows
        plan["copy"] = f"select * from {relation}"
        table = landing.get(name)
        if table is not None:
            keyed = landing_keyed_values(table)
            plan["keyed_values"] = [f"{k.label}" for k in keyed]
            columns = ", ".join(
                f"cdp_pseudonym_{k.domain}(cast({k.id_type} as varchar), cast({k.value} as varchar))"
                f" as floor_key_{i}"
                for i, k in enumerate(keyed, start=1)
            )
            plan["keyed"] = f"select *, {columns} from {relation}" if keyed else plan["copy"]
        elif not _KEYED_FUNCTIONS.search(compiled.get(name, "")):
            plan["keyed_values"] = []
            plan["notes"].append("computes no keyed value: keyed floor = copy floor")
        else:
            plan["notes"].append("its keyed values are not derived: no keyed floor")
        plans.append(plan)
    return plans


def input_relations(
    node: Mapping[str, Any], manifest: Mapping[str, Any]
) -> list[tuple[Mapping[str, Any], tuple[str, ...]]]:
    """The relations a model reads, each with the ephemeral models it reads it through.

    An ephemeral parent is no relation: the model reads that parent's own inputs, inlined (the
    profile's events come from the staging views through int_consent__retained_person_events),
    so those are its inputs too. Without this, a model whose largest input is ephemeral got the
    largest of its other parents as its floor's input, a far smaller table.
    """
    found: list[tuple[Mapping[str, Any], tuple[str, ...]]] = []
    seen: set[str] = set()

    def visit(uids: Iterable[str], through: tuple[str, ...]) -> None:
        for uid in uids:
            if uid in seen:
                continue
            seen.add(uid)
            parent = manifest["nodes"].get(uid) or manifest["sources"].get(uid)
            if parent is None:
                continue
            if parent.get("relation_name"):
                found.append((parent, through))
            elif parent.get("config", {}).get("materialized") == "ephemeral":
                visit(parent["depends_on"]["nodes"], (*through, parent["name"]))

    visit(node["depends_on"]["nodes"], ())
    return found


def count_rows(scale_dir: Path, relations: Iterable[str]) -> dict[str, int | None]:
    """Rows of each relation (as dbt names them) of the warehouse, raw zone and vault files."""
    con = duckdb.connect(str(scale_dir / "warehouse.duckdb"), read_only=True)
    try:
        con.execute(f"attach {_literal(str(scale_dir / 'raw.duckdb'))} as raw (read_only)")
        if (scale_dir / "vault.duckdb").exists():
            con.execute(f"attach {_literal(str(scale_dir / 'vault.duckdb'))} as vault (read_only)")
        out: dict[str, int | None] = {}
        for relation in set(relations):
            try:
                row = con.execute(f"select count(*) from {relation}").fetchone()
                out[relation] = int(row[0]) if row else None
            except duckdb.Error:
                out[relation] = None  # a view over a plugin function, or not built
        return out
    finally:
        con.close()


def floor_verdicts(model: Mapping[str, Any]) -> list[str]:
    """What is wrong with a heavy model's floors, if anything (a floor must be a lower bound)."""
    problems: list[str] = []
    alone = model.get("alone_seconds")
    copy, keyed = model.get("copy_floor"), model.get("keyed_floor")
    for label, floor in (("copy", copy), ("keyed", keyed)):
        if floor and alone is not None and floor["seconds"] > alone:
            problems.append(
                f"{label} floor {floor['seconds']:.2f} s is above the model alone ({alone:.2f} s): "
                "not a lower bound of its work (a wrong input, or the model reads less than a copy)"
            )
    if copy and keyed and keyed["rows"] != copy["rows"]:
        problems.append(f"keyed floor has {keyed['rows']:,} rows, copy floor {copy['rows']:,}")
    if copy and model.get("input_rows") is not None and copy["rows"] != model["input_rows"]:
        problems.append(f"copy floor has {copy['rows']:,} rows, its input {model['input_rows']:,}")
    if (
        copy
        and keyed
        and model.get("keyed_values")
        and (keyed["columns"] != copy["columns"] + len(model["keyed_values"]))
    ):
        problems.append("keyed floor lacks a keyed column")
    return problems


def compiled_sql(target: Path) -> dict[str, str]:
    """Each model's compiled SQL from the build's run_results (every stage)."""
    out: dict[str, str] = {}
    for stage_dir in _stage_dirs(target):
        for r in json.loads((stage_dir / "run_results.json").read_text())["results"]:
            if r["unique_id"].startswith("model."):
                out[r["unique_id"].split(".")[-1]] = str(r.get("compiled_code") or "")
    return out


def heavy_models(full: Mapping[str, Any]) -> list[str]:
    """HEAVY_MODELS that the build ran, then the HEAVIEST slowest other tables (a view's node
    time is its creation, not its work)."""
    ran = full["models"]
    named = [m for m in HEAVY_MODELS if m in ran]
    slowest = [m for m in ran if ran[m]["materialized"] in ("table", "incremental")][:HEAVIEST]
    return named + [m for m in slowest if m not in named]


def measure_heavy(
    scale: dict[str, Any], scale_dir: Path, env: Mapping[str, str], as_of: str
) -> None:
    """Steps 4 and 5: the heavy models alone, then their floors; written into ``scale``."""
    full = scale["full"]
    heavy = heavy_models(full)
    vars_ = ["--vars", json.dumps({"as_of": as_of})]
    _log(f"  heavy models alone ({len(heavy)} models, --threads 1 --full-refresh)")
    alone_step = measured(
        staged(
            "run",
            "--select",
            *heavy,
            "--full-refresh",
            "--threads",
            "1",
            *vars_,
            target=scale_dir / "alone",
        ),
        env,
        "heavy models alone",
    )
    alone = model_seconds(scale_dir / "alone")
    scale["alone_run"] = {
        "seconds": round(alone_step.seconds, 1),
        "load_start": alone_step.load_start,
        "load_max": alone_step.load_max,
    }

    manifest = json.loads((scale_dir / "full" / "manifest.json").read_text())
    relations = [n["relation_name"] for n in manifest["nodes"].values() if n.get("relation_name")]
    relations += [
        s["relation_name"] for s in manifest["sources"].values() if s.get("relation_name")
    ]
    counts = count_rows(scale_dir, relations)
    compiled = compiled_sql(scale_dir / "full")
    plans = plan_floors(heavy, manifest, counts, compiled)
    by_name = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    floors_plan: dict[str, list[dict[str, str]]] = {}
    for plan in plans:
        for kind in ("copy", "keyed"):
            if kind in plan and not (kind == "keyed" and plan["keyed"] == plan["copy"]):
                floors_plan.setdefault(plan["target"], []).append(
                    {"name": f"{plan['model']}:{kind}", "select": plan[kind]}
                )
    plan_file, out_file = scale_dir / "floors_plan.json", scale_dir / "floors.json"
    profiles_plan = plan_profiles(alone, {p["model"]: p["target"] for p in plans}, compiled)
    plan_file.write_text(
        json.dumps(
            {"targets": floors_plan, "profiles": profiles_plan, "vars": {"as_of": as_of}},
            indent=2,
        )
    )
    _log(
        f"  floors ({sum(len(f) for f in floors_plan.values())} statements), then profiles of "
        f"{', '.join(p['name'] for ps in profiles_plan.values() for p in ps)}"
    )
    floor_step = measured(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "_floors",
            str(plan_file),
            str(out_file),
            str(scale_dir / "floors"),
        ],
        env,
        "floors",
    )
    floors_out = json.loads(out_file.read_text())
    floors = {f["name"]: f for f in floors_out["floors"]}
    scale["floor_run"] = {
        "seconds": round(floor_step.seconds, 1),
        "load_start": floor_step.load_start,
        "load_max": floor_step.load_max,
        "settings": floors_out["settings"],
    }
    for target, error in floors_out.get("errors", {}).items():
        scale["heavy_failed"] = (
            f"the floors or profiles on target {target} failed: {publishable_line(error)}"
        )
        _log(f"  floors or profiles on target {target} FAILED: {error}")
    scale["profiles"] = sorted(
        (profile_summary(p, alone.get(p["name"])) for p in floors_out.get("profiles", [])),
        key=lambda p: -(p["alone_seconds"] or 0.0),
    )
    rows: list[dict[str, Any]] = []
    for plan in plans:
        name = plan["model"]
        node = by_name[name]
        built = full["models"].get(name, {})
        model_rows = counts.get(node.get("relation_name") or "")
        copy = floors.get(f"{name}:copy")
        keyed = floors.get(f"{name}:keyed") or (
            copy
            if plan.get("keyed") == plan.get("copy") or plan.get("keyed_values") == []
            else None
        )
        entry = {
            "model": name,
            "materialized": built.get("materialized", node["config"]["materialized"]),
            "stage": built.get("stage"),
            "rows": model_rows,
            "node_seconds": built.get("seconds"),
            "overlapped": built.get("overlapped"),
            "alone_seconds": round(alone[name], 2) if name in alone else None,
            "input": plan.get("input"),
            "input_rows": plan.get("input_rows"),
            "keyed_values": plan.get("keyed_values"),
            "copy_floor": _floor(copy),
            "keyed_floor": _floor(keyed),
            "notes": plan["notes"],
        }
        entry["problems"] = floor_verdicts(entry)
        for problem in entry["problems"]:
            _log(f"  FLOOR CHECK {name}: {problem}")
        rows.append(entry)
    scale["heavy"] = rows


def plan_profiles(
    alone: Mapping[str, float], targets: Mapping[str, str], compiled: Mapping[str, str]
) -> dict[str, list[dict[str, str]]]:
    """The slowest heavy model alone of each stage (privacy, local, vault): its compiled select,
    on that stage's target (its connection, settings and registered functions)."""
    out: dict[str, list[dict[str, str]]] = {}
    for model in sorted(targets, key=lambda m: -alone.get(m, -1.0)):
        if alone.get(model) is not None and compiled.get(model) and targets[model] not in out:
            out[targets[model]] = [{"name": model, "select": compiled[model]}]
    return out


def profile_summary(result: Mapping[str, Any], alone: float | None) -> dict[str, Any]:
    """A profile as the page keeps it: the model, its seconds, and its operators with only the
    fields of PROFILE_FIELDS (the macro keeps only those; anything else is dropped here too)."""
    operators = [
        {k: v for k, v in op.items() if k in PROFILE_FIELDS} for op in result.get("operators", [])
    ]
    return {
        "model": result["name"],
        "seconds": round(float(result["seconds"]), 2),
        "alone_seconds": alone,
        "operator_seconds": round(sum(float(op.get("seconds", 0.0)) for op in operators), 4),
        "operators": operators,
    }


def _floor(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "seconds": round(float(result["seconds"]), 3),
        "rows": int(result["rows"]),
        "columns": int(result["columns"]),
    }


# --------------------------------------------------------------------------- one scale


def raw_row_count(raw_db: Path) -> int:
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema <> 'audit'"
        ).fetchall()
        total = 0
        for schema, table in tables:
            row = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            total += int(row[0]) if row else 0
        return total
    finally:
        con.close()


#: The Spark environment (make venv-spark) and the keyed functions' jar (make spark-jar).
SPARK_PYTHON: Final = ROOT / ".venv-spark" / "bin" / "python"
_SPARK_LOADED: Final = re.compile(r"cdp: loaded (\d+) rows into (\d+) Spark tables in ([\d.]+) s")


def spark_missing() -> str | None:
    """What a Spark build needs and this checkout lacks, as the command that makes it; or None."""
    from cdp import spark_udf  # imports no pyspark

    missing = [
        target
        for target, path in (("venv-spark", SPARK_PYTHON), ("spark-jar", spark_udf.JAR))
        if not path.exists()
    ]
    return f"make {' '.join(missing)}" if missing else None


def spark_table_rows(warehouse: Path) -> dict[str, int]:
    """``database.table`` -> rows of each table a Spark build wrote (the Parquet files under
    ``<warehouse>/<database>.db/<table>/``), counted by DuckDB. Views have no files."""
    con = duckdb.connect()
    counts: dict[str, int] = {}
    try:
        for database_dir in sorted(warehouse.glob("*.db")):
            for table_dir in sorted(p for p in database_dir.iterdir() if p.is_dir()):
                files = sorted(str(f) for f in table_dir.rglob("*.parquet"))
                row = (
                    con.execute("select count(*) from read_parquet(?)", [files]).fetchone()
                    if files
                    else (0,)
                )
                counts[f"{database_dir.name.removesuffix('.db')}.{table_dir.name}"] = (
                    int(row[0]) if row else 0
                )
    finally:
        con.close()
    return counts


def duckdb_relation_rows(env: Mapping[str, str], name: str) -> int | None:
    """Rows of the DuckDB relation a Spark table ``database.table`` stands for (None: none):
    ``raw_<schema>`` is the landing zone's schema, ``vault`` the vault file, the other
    databases the warehouse's schemas of the same name."""
    database, table = name.split(".", 1)
    if database.startswith("raw_"):
        db, schema = env["CDP_RAW_DB"], database.removeprefix("raw_")
    elif database == "vault":
        db, schema = env["CDP_VAULT_DB"], "main"
    else:
        db, schema = env["CDP_WAREHOUSE_DB"], database
    con = duckdb.connect(db, read_only=True)
    try:
        found = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()
        if not found or not found[0]:
            return None
        row = con.execute(f"select count(*) from {_quote(schema)}.{_quote(table)}").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def bench_spark(scale: dict[str, Any], scale_dir: Path, env: Mapping[str, str], as_of: str) -> None:
    """The same landing zone built on Apache Spark (``cdp spark-build``, .venv-spark), right after
    the DuckDB full build and with its key: wall time, the sampled peak of the process tree (the
    driver and its JVM), the load of the landing zone, dbt's stages and node times; then each
    Spark table's rows against the DuckDB relation it stands for."""
    missing = spark_missing()
    if missing:
        raise StepFailed(f"the Spark build needs `{missing}` first")
    workdir = scale_dir / "spark"
    key_dir = scale_dir / "spark-key"
    key_dir.mkdir(mode=0o700)
    key_file = key_dir / "master.key"
    # The JVM reads the key from a file (decision 63): the DuckDB build's key, owner-only, for as
    # long as the build runs.
    key_file.touch(mode=0o600)
    key_file.write_text(env["CDP_MASTER_KEY"])
    spark_env = {k: v for k, v in env.items() if k != "CDP_MASTER_KEY"}
    spark_env.update({"CDP_MASTER_KEY_FILE": str(key_file), "TZ": "UTC"})
    vars_ = json.dumps({"as_of": as_of})
    command = [str(SPARK_PYTHON), "-m", "cdp.cli", "spark-build"]
    command += ["--raw-db", env["CDP_RAW_DB"], "--workdir", str(workdir), "--vars", vars_]
    _log(f"  Spark build (load {load_average()})")
    try:
        step = measured(command, spark_env, "Spark build", tree=True)
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)
    build = read_build(step, workdir / "target")
    build["peak_mb"] = round(step.tree_peak_mb)  # the driver and its JVM, sampled each second
    loaded = _SPARK_LOADED.search(step.output)
    if loaded:
        build["loaded_rows"] = int(loaded.group(1))
        build["load_seconds"] = float(loaded.group(3))
    rows = spark_table_rows(workdir / "spark-warehouse")
    checked = {name: (n, duckdb_relation_rows(env, name)) for name, n in rows.items()}
    build["tables"] = len(checked)
    build["tables_equal_rows"] = sum(1 for n, d in checked.values() if n == d)
    from cdp.spark_stage import PROVIDED_TABLES, raw_database  # imports no pyspark

    provided = {f"{raw_database(schema)}.{table}" for schema, table in PROVIDED_TABLES}
    build["row_differences"] = {
        name: {"spark": n, "duckdb": d, "provided": name in provided}
        for name, (n, d) in checked.items()
        if n != d
    }
    scale["spark"] = build
    _log(
        f"  Spark build {step.seconds:,.1f} s, peak {step.tree_peak_mb:,.0f} MB (process tree); "
        f"{build['tables_equal_rows']} of {build['tables']} tables with DuckDB's row count"
    )


def spark_kept(previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Spark run a scale measured before, to keep when the scale is measured again without
    Spark: with ``beside``, the DuckDB full build it ran with (its commit, seconds, tests and
    models), so that the page compares it with that build and not the new one (decision 103).
    A failed Spark run, or none, is not kept."""
    spark = previous.get("spark") if previous else None
    if not previous or not isinstance(spark, Mapping) or "failed" in spark:
        return None
    kept = dict(spark)
    if "beside" not in kept:
        full = previous.get("full") or {}
        kept["beside"] = {
            "commit": previous.get("commit"),
            "seconds": full.get("seconds"),
            "tests": full.get("tests"),
            "models": full.get("models") or {},
        }
    return kept


def keep_spark(scale: dict[str, Any], kept: dict[str, Any] | None) -> None:
    """Put the kept Spark run (spark_kept) into a scale measured again without Spark, once the
    scale has its DuckDB full build: a scale that failed before it shows no Spark row."""
    if kept and "full" in scale and "spark" not in scale:
        scale["spark"] = kept


def bench_scale(
    scale: dict[str, Any], scale_dir: Path, env: dict[str, str], as_of: str, *, spark: bool = False
) -> None:
    """Every step of one scale, each result written into ``scale`` as soon as it is measured.
    ``spark``: also the same landing zone on Spark, after the DuckDB full build."""
    customers = int(scale["customers"])
    raw_db = Path(env["CDP_RAW_DB"])
    generator = [sys.executable, str(ROOT / "scripts" / "generate_landing.py")]
    common = ["--seed", str(SEED), "--reference-date", REFERENCE_DATE, "--quiet"]
    files = ["--raw-db", env["CDP_RAW_DB"], "--truth-db", env["CDP_TRUTH_DB"]]
    vars_ = ["--vars", json.dumps({"as_of": as_of})]
    keyless = {k: v for k, v in env.items() if k != "CDP_MASTER_KEY"}  # steps that need no key

    scale["step"] = "generate batch 1"
    _log(f"{customers:,} customers: generating batch 1 (load {load_average()})")
    generated = measured(
        [*generator, "--customers", str(customers), *common, *files], env, "generate"
    )
    scale["raw_rows"] = raw_rows = raw_row_count(raw_db)
    scale["generate_seconds"] = round(generated.seconds, 1)
    scale["generate_peak_mb"] = round(generated.peak_mb)
    _log(f"  {raw_rows:,} raw rows in {generated.seconds:,.1f} s")

    scale["step"] = "dbt parse"
    _log("  dbt parse (no partial parse)")
    dbt = str(Path(sys.executable).with_name("dbt"))
    parse_target = scale_dir / "parse"
    parsed = measured(
        [
            dbt,
            "parse",
            "--no-partial-parse",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            "--target-path",
            str(parse_target),
            "--log-path",
            str(parse_target / "logs"),
        ],
        keyless,
        "dbt parse",
    )
    scale["parse_seconds"] = round(parsed.seconds, 1)

    scale["step"] = "full build"
    _log(f"  full build (load {load_average()})")
    full_step = measured(staged("build", *vars_, target=scale_dir / "full"), env, "full build")
    scale["full"] = read_build(full_step, scale_dir / "full")
    _log(f"  full build {full_step.seconds:,.1f} s, peak {full_step.peak_mb:,.0f} MB")

    if spark:  # before batch 2 changes the landing zone; a failure keeps the DuckDB figures
        scale["step"] = "Spark build"
        try:
            bench_spark(scale, scale_dir, env, as_of)
        except (StepFailed, OSError, KeyError, ValueError, duckdb.Error) as exc:
            scale["spark"] = {"failed": _published(exc)}
            _log(f"  Spark build FAILED (the DuckDB figures are kept): {_short(exc)}")

    scale["step"] = "heavy models alone and floors"
    try:
        measure_heavy(scale, scale_dir, env, as_of)
    except (StepFailed, OSError, KeyError, ValueError, duckdb.Error) as exc:
        scale["heavy_failed"] = _published(exc)
        _log(f"  heavy models / floors FAILED (the build figures are kept): {_short(exc)}")

    scale["step"] = "generate batch 2"
    increment = max(1, customers // 100)
    _log(f"  generating batch 2 ({increment:,} new customers, one more day of events)")
    measured(
        [*generator, "--customers", str(increment), "--batch", "2", *common, *files],
        keyless,
        "generate batch 2",
    )
    scale["increment_customers"] = increment
    scale["increment_raw_rows"] = raw_row_count(raw_db) - raw_rows

    scale["step"] = "incremental build"
    scale["incremental_partial_parse"] = keep_partial_parse(
        scale_dir / "full", scale_dir / "incremental"
    )
    _log(f"  incremental build (load {load_average()})")
    inc_step = measured(
        staged("build", *vars_, target=scale_dir / "incremental"), env, "incremental build"
    )
    scale["incremental"] = read_build(inc_step, scale_dir / "incremental")
    _log(f"  incremental build {inc_step.seconds:,.1f} s, peak {inc_step.peak_mb:,.0f} MB")
    del scale["step"]


def _short_lines(exc: BaseException) -> list[str]:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    tail = [line for line in text.splitlines()[1:] if "error" in line.lower()][-3:]
    return [first[:300], *(line.strip()[:300] for line in tail)]


def _short(exc: BaseException) -> str:
    """The failure for the bench's own log (stderr): its first line and last error lines."""
    return " | ".join(_short_lines(exc))


def _published(exc: BaseException) -> str:
    """The failure as the page and performance.json say it: ``_short`` with every line
    reduced by ``publishable_line``."""
    return " | ".join(publishable_line(line) for line in _short_lines(exc))


# What a failure line may keep on the page. A DuckDB message can quote a value of the data (a
# failed cast names the text, a broken JSON its input, a duplicate key the key), and in the
# privacy stage that value can be a raw identifier: so only shapes made of the project's own
# names and numbers pass whole; of any other DuckDB error its class; the rest is withheld.
_STEP_FAILED: Final = re.compile(r"^[\w ,.()-]+? failed \(exit -?\d+\)")
_DBT_NODE_ERROR: Final = re.compile(
    r"^(?:(?:Compilation|Database|Runtime|Parsing|Dependency) Error|Failure) in "
    r"(?:(?:model|test|seed|snapshot|operation|unit_test|sql_operation) )?[\w.]+(?: \([\w./-]+\))?"
)
_DBT_SUMMARY: Final = re.compile(
    r"^Done\. PASS=\d+ WARN=\d+ ERROR=\d+ SKIP=\d+(?: NO-OP=\d+)? TOTAL=\d+$"
)
_DUCKDB_ERROR: Final = re.compile(
    r"^(?P<kind>[A-Z][A-Za-z]*(?: [A-Za-z]+)* Error): (?P<message>.*)$"
)
_SIZE: Final = r"[\d.]+ [KMGT]?i?B"
_MEMORY_MESSAGE: Final = re.compile(
    rf"^(?:failed to pin block|could not allocate block|failed to allocate data) of size {_SIZE}"
    rf" \({_SIZE}/{_SIZE} used\)$"
)
WITHHELD: Final = "[withheld: it may quote a data value; the bench's log has it]"


def publishable_line(line: str) -> str:
    """One line of a failure, reduced to what the page may say (see ``_DUCKDB_ERROR``)."""
    line = line.strip()
    if _DBT_SUMMARY.match(line):
        return line
    for shape in (_STEP_FAILED, _DBT_NODE_ERROR):
        match = shape.match(line)
        if match:
            return match.group(0) + (" ..." if match.end() < len(line) else "")
    match = _DUCKDB_ERROR.match(line)
    if match:
        if _MEMORY_MESSAGE.match(match["message"]):
            return line
        return f"{match['kind']}: {WITHHELD}"
    return WITHHELD


def bench_hmac(rows: int) -> dict[str, float]:
    """Rows per second of native sha256 and of the keyed macro, from scripts/bench_hmac.py."""
    _log(f"HMAC beside native sha256 ({rows:,} rows)")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_hmac.py"),
            "--rows",
            str(rows),
            "--repeat",
            "3",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = {}
    for line in result.stdout.splitlines():
        match = re.match(
            r"(native sha256|sql macro over distinct|sql macro|arrow udf)\s+([\d,]+)\s", line
        )
        if match:
            figures[match.group(1)] = float(match.group(2).replace(",", ""))
    if "native sha256" not in figures or "sql macro" not in figures:
        raise SystemExit("bench_hmac.py printed no figures:\n" + result.stdout)
    return figures


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dbt_core": version("dbt-core"),
        "dbt_duckdb": version("dbt-duckdb"),
    }


# --------------------------------------------------------------------------- the page


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.0f} s" if seconds >= 100 else f"{seconds:,.1f} s"


def _ratio(value: float | None, floor: Mapping[str, Any] | None) -> str:
    if value is None or not floor or not floor["seconds"]:
        return "-"
    mark = " !" if value < floor["seconds"] else ""
    return f"{value / floor['seconds']:,.1f}x{mark}"


GOAL_CUSTOMERS: Final = 1_000_000
GOAL_FULL_SECONDS: Final = 300
GOAL_PEAK_GIB: Final = 8
GOAL_INCREMENTAL_SHARE: Final = 0.10
GOAL_100K_SECONDS: Final = 40
GOAL_FLOOR_RATIO: Final = 3.0


def floor_ratios(scale: Mapping[str, Any]) -> list[tuple[float, Mapping[str, Any]]]:
    """Each heavy model of a scale with a measured keyed floor: its time alone over that floor."""
    return [
        (m["alone_seconds"] / m["keyed_floor"]["seconds"], m)
        for m in scale.get("heavy") or ()
        if m.get("keyed_floor") and m.get("alone_seconds") and m["keyed_floor"]["seconds"]
    ]


def goals(scales: list[dict[str, Any]]) -> list[str]:
    """Issue 18's goals, checked against the measured scales (where there are any)."""
    lines = ["", "## Goals (issue 18)", ""]
    checks: list[tuple[str, bool, str]] = []
    at = {s["customers"]: s for s in scales if s.get("full")}
    big = at.get(GOAL_CUSTOMERS)
    if big:
        full, inc = big["full"], big.get("incremental")
        peak = max(full["peak_mb"], inc["peak_mb"] if inc else 0.0) / 1024
        checks += [
            (
                "1M: full build <= 5 minutes",
                full["seconds"] <= GOAL_FULL_SECONDS,
                _fmt_s(full["seconds"]),
            ),
            (
                "1M: peak memory <= 8 GiB",
                peak <= GOAL_PEAK_GIB and inc is not None,
                f"{peak:,.2f} GiB" + ("" if inc else " (full build; no increment measured)"),
            ),
        ]
        if inc:
            share = inc["seconds"] / full["seconds"]
            checks.append(
                (
                    "1M: 1% incremental <= 10% of the full build",
                    share <= GOAL_INCREMENTAL_SHARE,
                    f"{share:.0%}",
                )
            )
        else:
            checks.append(
                (
                    "1M: 1% incremental <= 10% of the full build",
                    False,
                    "failed" if big.get("failed") else "not measured",
                )
            )
    mid = at.get(100_000)
    if mid:
        checks.append(
            (
                "100k: full build <= 40 s",
                mid["full"]["seconds"] <= GOAL_100K_SECONDS,
                _fmt_s(mid["full"]["seconds"]),
            )
        )
    for s in scales:
        ratios = [ratio for ratio, _ in floor_ratios(s)]
        if ratios:
            worst = max(ratios)
            checks.append(
                (
                    f"{s['customers']:,}: every heavy model within 3x of its keyed floor (alone)",
                    worst <= GOAL_FLOOR_RATIO,
                    f"worst {worst:,.1f}x",
                )
            )
    if not checks:
        return [*lines, "Not measured yet."]
    lines += ["| goal | measured | met |", "|---|---:|---|"]
    lines += [f"| {goal} | {value} | {'yes' if met else 'no'} |" for goal, met, value in checks]
    return lines


#: What a node of each kind does in an incremental build, for the page's reader.
_KIND_IN_INCREMENT: Final[dict[str, tuple[str, str]]] = {
    "table": ("table models", "rebuilt whole"),
    "incremental": ("incremental models", "new or changed rows only"),
    "view": ("views", "no rows written"),
}


def time_by_kind(build: Mapping[str, Any]) -> dict[str, float]:
    """A build's node time split by what the nodes are: models by materialization, the tests
    (data and unit), and the rest (seeds, operations)."""
    split: dict[str, float] = {}
    for m in (build.get("models") or {}).values():
        split[m["materialized"]] = split.get(m["materialized"], 0.0) + m["seconds"]
    split["tests"] = float(build.get("test_seconds") or 0.0)
    split["other"] = max(0.0, build["node_seconds"] - sum(split.values()))
    return split


def _heaviest(build: Mapping[str, Any], kinds: Iterable[str] | None = None, n: int = 3) -> str:
    """The ``n`` slowest models of a build (of the given materializations), with their times."""
    wanted = set(kinds) if kinds is not None else None
    picked = [
        (name, m)
        for name, m in (build.get("models") or {}).items()
        if wanted is None or m["materialized"] in wanted
    ]
    picked.sort(key=lambda item: item[1]["seconds"], reverse=True)
    return ", ".join(
        f"{name} {_fmt_s(m['seconds'])} ({m['stage']}, {m['materialized']})"
        for name, m in picked[:n]
    )


def where_time_goes(scales: list[dict[str, Any]]) -> list[str]:
    """Each build's node time by kind, and for each goal issue 18 sets that a scale misses, the
    nodes that hold it: computed from the same run's figures, nothing written by hand."""
    measured = [s for s in scales if s.get("full")]
    if not measured:
        return []
    lines = [
        "",
        "## Where the time goes",
        "",
        "Each build's node time (2 threads, so it overstates the wall time it costs: see *Node time,",
        "critical path and wall time*) split by kind: the incremental models, the table models (an",
        "incremental build rebuilds each of them whole), the views, and the tests (data and unit",
        "tests: each runs over its whole relation in every build, not only over what changed;",
        "decision 66). *dbt overhead* is the wall time outside dbt's three stages' elapsed time.",
        "A scale measured before the page recorded each node has no split (-).",
        "",
        "| customers | build | wall | dbt overhead | node time | incremental models | table models "
        "| views | tests | other |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in measured:
        for build in ("full", "incremental"):
            b = s.get(build)
            if not b:
                continue
            split = time_by_kind(b) if b.get("models") else {}
            cells = [
                f"{s['customers']:,}",
                build,
                _fmt_s(b["seconds"]),
                _fmt_s(b["seconds"] - b["dbt_elapsed"]),
                _fmt_s(b["node_seconds"]),
                *(
                    _fmt_s(split.get(kind, 0.0)) if split else "-"
                    for kind in ("incremental", "table", "view", "tests", "other")
                ),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    held = _held_goals(measured)
    if held:
        lines += [
            "",
            "**The goals missed, and what holds each** (from the figures above and below):",
            "",
        ]
        lines += held
    return lines


def _held_goals(scales: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for s in scales:
        customers, full, inc = s["customers"], s["full"], s.get("incremental")
        if not full.get("models"):
            continue  # measured before the page recorded each node: nothing to name
        goal = {GOAL_CUSTOMERS: GOAL_FULL_SECONDS, 100_000: GOAL_100K_SECONDS}.get(customers)
        if goal is not None and full["seconds"] > goal:
            split = time_by_kind(full)
            keyed = [
                m["keyed_floor"]["seconds"]
                for m in s.get("heavy") or ()
                if m.get("keyed_floor") and m.get("keyed_values")
            ]
            floors = (
                f"; the keyed floors of the {len(keyed)} heavy "
                f"{'model that computes' if len(keyed) == 1 else 'models that compute'} keyed "
                f"values sum to {_fmt_s(sum(keyed))} alone ({sum(keyed) / goal:.0%} of the goal)"
                if keyed
                else ""
            )
            lines.append(
                f"- {customers:,}: full build {_fmt_s(full['seconds'])} against {_fmt_s(goal)}. "
                f"Node time {_fmt_s(full['node_seconds'])} on 2 threads (incremental models "
                f"{_fmt_s(split.get('incremental', 0.0))}, table models {_fmt_s(split.get('table', 0.0))}, "
                f"tests {_fmt_s(split['tests'])}), dbt overhead {_fmt_s(full['seconds'] - full['dbt_elapsed'])}. "
                f"Slowest: {_heaviest(full)}{floors}.{_profiled_note(s)}"
            )
        if inc and inc["seconds"] > GOAL_INCREMENTAL_SHARE * full["seconds"]:
            lines.append(_held_increment(customers, full, inc))
        over = sorted((r for r in floor_ratios(s) if r[0] > GOAL_FLOOR_RATIO), key=lambda r: -r[0])
        if over:
            named = ", ".join(
                f"{m['model']} {ratio:,.1f}x ({m['alone_seconds']:,.2f} s alone, floor "
                f"{_floor_s(m['keyed_floor'])}{'' if m.get('keyed_values') else ', a copy: it computes no keyed value'})"
                for ratio, m in over
            )
            lines.append(f"- {customers:,}: over 3x their keyed floor: {named}.")
    return lines


def _profiled_note(scale: Mapping[str, Any]) -> str:
    names = [p["model"] for p in scale.get("profiles") or ()]
    return f" Profiled below, alone: {', '.join(names)}." if names else ""


def _held_increment(customers: int, full: Mapping[str, Any], inc: Mapping[str, Any]) -> str:
    split = time_by_kind(inc)
    share = inc["seconds"] / full["seconds"]
    kinds = ", ".join(
        f"{_KIND_IN_INCREMENT[kind][0]} {_fmt_s(split[kind])} ({_KIND_IN_INCREMENT[kind][1]})"
        for kind in ("table", "incremental", "view")
        if split.get(kind)
    )
    return (
        f"- {customers:,}: the 1% increment takes {_fmt_s(inc['seconds'])}, {share:.0%} of the full "
        f"build (the goal, set at {GOAL_CUSTOMERS:,}: {GOAL_INCREMENTAL_SHARE:.0%}). Of its node time {_fmt_s(inc['node_seconds'])}: "
        f"{kinds}; tests {_fmt_s(split['tests'])} (over whole relations); dbt overhead "
        f"{_fmt_s(inc['seconds'] - inc['dbt_elapsed'])}. Slowest table models, each rebuilt whole: "
        f"{_heaviest(inc, ['table'])}."
    )


def _commit_note(scales: list[dict[str, Any]]) -> list[str]:
    commits = {
        (s.get("commit") or "unknown") + (" (dirty tree)" if s.get("dirty") else "") for s in scales
    }
    if len(commits) == 1:
        return [f"All scales measured at commit {commits.pop()}."]
    return [
        "**The scales were measured at different commits** (compare with care): "
        + "; ".join(
            f"{s['customers']:,} at {s.get('commit') or 'unknown'}{' (dirty tree)' if s.get('dirty') else ''}"
            for s in scales
        )
        + "."
    ]


def render(results: Mapping[str, Any]) -> str:
    scales = sorted(results["scales"].values(), key=lambda s: s["customers"])
    lines = [
        "# Performance",
        "",
        "Generated by `scripts/bench_build.py`; do not edit by hand. Reproduce (about an hour;",
        "`--scales 10000,100000` takes a few minutes) with",
        "",
        "```sh",
        "make venv",
        ".venv/bin/python scripts/bench_build.py --scales 10000,100000,1000000",
        "```",
        "",
        "Each scale is a fresh landing zone from the generator (seed 42, reference date",
        f"{REFERENCE_DATE}, default dirty-data rate), built at a fixed `as_of` as `cdp build` builds",
        "it: the privacy, analytics and vault stages, at the profile's 2 threads. The increment is",
        "batch 2 of the generator: 1% new customers and one more day of events, orders and",
        "messages. Every step runs in its own process; *peak* is that process's peak resident",
        "memory. *dbt overhead* is the build's wall time minus dbt's own elapsed time of its",
        "three stages (process start, parsing, manifest): the cost of dbt itself rather than of",
        "the SQL. *Load* is the 1-minute load average when the build started and the highest",
        "seen while it ran (2 cores: above 2, the build shared the machine).",
        "",
    ]
    lines += _commit_note(scales)
    lines += [
        "",
        "| customers | raw rows | generate | dbt parse | full build | peak (full) "
        "| increment rows | incremental build | incr. / full | dbt overhead | load (start / max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scales:
        full, inc = s.get("full"), s.get("incremental")
        if not full:
            lines.append(f"| {s['customers']:,} | " + " | ".join(["-"] * 9) + " | failed |")
            continue
        load = f"{full.get('load_start', s.get('load_average', '-'))} / {full.get('load_max', '-')}"
        cells = [
            f"{s['customers']:,}",
            f"{s['raw_rows']:,}",
            _fmt_s(s["generate_seconds"]),
            _fmt_s(s["parse_seconds"]),
            _fmt_s(full["seconds"]),
            f"{full['peak_mb'] / 1024:,.2f} GiB",
            f"{s['increment_raw_rows']:,}" if inc else "-",
            _fmt_s(inc["seconds"]) if inc else "-",
            f"{inc['seconds'] / full['seconds']:.0%}" if inc else "-",
            _fmt_s(full["seconds"] - full["dbt_elapsed"]),
            load,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [s for s in scales if s.get("failed") or s.get("heavy_failed")]
    for s in failed:
        if s.get("failed"):
            lines += [
                "",
                f"**{s['customers']:,} customers: FAILED at step {s.get('step', '?')}**, this page is partial: {s['failed']}",
            ]
        if s.get("heavy_failed"):
            lines += [
                "",
                f"**{s['customers']:,} customers: the heavy models' rerun or floors failed**: {s['heavy_failed']}",
            ]
    noted = [s for s in scales if s.get("note")]
    if noted:  # what a reader must know about a row (set in performance.json)
        lines += [""] + [f"Note on {s['customers']:,} customers: {s['note']}" for s in noted]
    lines += goals(scales)
    lines += where_time_goes(scales)
    lines += _spark_section(scales)
    lines += _critical_paths(scales)
    lines += _heavy_tables(scales)
    lines += _profiles(scales)
    for build, title in (("full", "full build"), ("incremental", "incremental build")):
        lines += ["", f"## Slowest models of the {title} (node times, 2 threads)", ""]
        for s in scales:
            b = s.get(build)
            if not b:
                continue
            lines += [
                f"**{s['customers']:,} customers** ({b['nodes']} nodes, "
                f"{_fmt_s(b['node_seconds'])} of node time; critical path {_fmt_s(b.get('critical_path'))})",
                "",
                "| model | stage | materialized | node seconds | of which overlapped |",
                "|---|---|---|---:|---:|",
            ]
            for name, m in list((b.get("models") or {}).items())[:8]:
                share = m["overlapped"] / m["seconds"] if m["seconds"] else 0
                lines.append(
                    f"| {name} | {m['stage']} | {m['materialized']} | {m['seconds']:,.1f} | {share:.0%} |"
                )
            lines.append("")
    hmac = results.get("hmac")
    if hmac:
        native = hmac["native sha256"]
        lines += [
            "## Keyed hashing beside DuckDB's native sha256",
            "",
            f"Measured in the run of {hmac['measured_at']} ({hmac['rows']:,} rows, best of 3).",
            "",
            "| function | rows/s | of native |",
            "|---|---:|---:|",
        ]
        for name in ("native sha256", "arrow udf", "sql macro", "sql macro over distinct"):
            if name in hmac:
                lines.append(f"| {name} | {hmac[name]:,.0f} | {hmac[name] / native:.2f} |")
        lines.append("")
    m = results["machine"]
    lines += [
        "## Machine",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
        f"DuckDB {m['duckdb']}, dbt-core {m['dbt_core']}, dbt-duckdb {m['dbt_duckdb']}.",
        "",
    ]
    return "\n".join(lines)


def _operator(op: Mapping[str, Any]) -> str:
    """An operator as the page names it: its type, join type, table and join conditions."""
    words = [str(op.get("type", "?"))]
    if op.get("join"):
        words.append(str(op["join"]))
    detail = op.get("table") or op.get("conditions") or ""
    detail = " ".join(str(detail).split())
    if len(detail) > 90:
        detail = detail[:87] + "..."
    return " ".join(words) + (f": `{detail}`" if detail else "")


def _profiles(scales: list[dict[str, Any]]) -> list[str]:
    """The slowest heavy models alone, each with the operators its time goes to."""
    profiled = [s for s in scales if s.get("profiles")]
    if not profiled:
        return []
    lines = [
        "",
        "## Profiles of the slowest heavy models",
        "",
        "The slowest heavy model alone of each stage (privacy, analytics, vault) at each scale,",
        "built once more after the floors, on the stage's connection, under DuckDB's `explain",
        "analyze`. An operator's seconds are DuckDB's, summed over the threads it ran on (so they",
        "add up to more than the wall time), and *share* is its part of the operators' sum. The",
        f"{PROFILE_OPERATORS} slowest operators are shown; *rows* are the rows it put out. Only each",
        "operator's type, join, table and join conditions are kept from the plan",
        "(macros/bench/bench_profile.sql says why).",
        "",
    ]
    for s in profiled:
        for p in s["profiles"]:
            total = p["operator_seconds"]
            lines += [
                f"**{s['customers']:,} customers, {p['model']}**: {_fmt_s(p['seconds'])} under "
                f"`explain analyze` ({_fmt_s(p.get('alone_seconds'))} alone in dbt), operators "
                f"{_fmt_s(total)}",
                "",
                "| operator | rows | seconds | share |",
                "|---|---:|---:|---:|",
            ]
            slowest = sorted(p["operators"], key=lambda op: -float(op.get("seconds", 0.0)))
            for op in slowest[:PROFILE_OPERATORS]:
                seconds = float(op.get("seconds", 0.0))
                lines.append(
                    f"| {_operator(op)} | {int(op.get('rows', 0)):,} | {seconds:,.2f} "
                    f"| {seconds / total if total else 0:.0%} |"
                )
            lines.append("")
    return lines


def _spark_section(scales: list[dict[str, Any]]) -> list[str]:
    """The scales also built on Apache Spark (``--spark-scales``), beside DuckDB's full build."""
    built = [s for s in scales if s.get("spark")]
    if not built:
        return []
    lines = [
        "",
        "## Apache Spark beside DuckDB (issue 19)",
        "",
        "The same landing zone file built on Spark by `cdp spark-build` (.venv-spark: a local",
        "session, `local[2]`, driver memory 1 GiB, 4 shuffle partitions, dbt threads 1; Parquet",
        "tables), right after the DuckDB full build of the scale and with its key. *Load* copies",
        "the landing zone into Spark tables; *dbt* is dbt's elapsed time over the Spark build's",
        "stages (seeds, privacy, analytics, vault); *peak* is the highest resident memory of the",
        "build's process tree (Python driver and JVM), sampled each second. *Tests* counts the",
        "data tests the Spark build ran (DuckDB's full build ran the number in brackets).",
        "*Rows* compares each table the Spark build wrote with the DuckDB relation it stands for",
        "(the same model, seed or landing table): how many have the same number of rows. That",
        "every relation is equal row for row, pseudonyms included, is shown on a small landing",
        "zone by `make test-spark` (pytests/test_spark_project.py), not here.",
        "",
        "| customers | raw rows | load | dbt | Spark build | peak | tests | DuckDB full build "
        "| Spark / DuckDB | rows equal | load (start / max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for s in built:
        # "beside": the DuckDB full build a Spark run was measured beside, kept with it when the
        # scale's DuckDB figures were measured again at a later commit without Spark.
        sp, full = s["spark"], s["spark"].get("beside") or s.get("full") or {}
        if sp.get("beside"):
            notes.append(
                f"- {s['customers']:,} customers: Spark was measured at {sp['beside']['commit']}, "
                f"beside that commit's DuckDB full build ({_fmt_s(full.get('seconds'))}), which "
                "its columns compare it with; the scale's DuckDB figures above were measured "
                f"again at {s.get('commit')} without Spark."
            )
        if sp.get("failed"):
            lines.append(
                f"| {s['customers']:,} | {s['raw_rows']:,} | " + " | ".join(["-"] * 9) + " |"
            )
            notes.append(f"- {s['customers']:,} customers: the Spark build FAILED: {sp['failed']}")
            continue
        duck_tests = full.get("tests")
        cells = [
            f"{s['customers']:,}",
            f"{s['raw_rows']:,}",
            _fmt_s(sp.get("load_seconds")),
            _fmt_s(sp["dbt_elapsed"]),
            _fmt_s(sp["seconds"]),
            f"{sp['peak_mb'] / 1024:,.2f} GiB",
            f"{sp.get('tests', 0)} ({duck_tests if duck_tests is not None else '-'})",
            _fmt_s(full.get("seconds")),
            f"{sp['seconds'] / full['seconds']:,.1f}x" if full.get("seconds") else "-",
            f"{sp['tables_equal_rows']} of {sp['tables']}",
            f"{sp['load_start']} / {sp['load_max']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
        notes += [
            f"- {s['customers']:,} customers, {name}: {d['spark']:,} rows on Spark, "
            + (
                f"{d['duckdb']:,} on DuckDB"
                if d["duckdb"] is not None
                else "no such DuckDB relation"
                + (
                    " (a table cdp spark-build provides, empty, when the landing zone has none)"
                    if d.get("provided")
                    else ""
                )
            )
            for name, d in sp["row_differences"].items()
        ]
    if notes:
        lines += ["", *notes]
    for s in built:
        sp = s["spark"]
        duck_models = (sp.get("beside") or s.get("full") or {}).get("models") or {}
        if sp.get("failed"):
            continue
        lines += [
            "",
            f"**{s['customers']:,} customers**: the slowest models on Spark, beside their node time"
            " in the DuckDB full build (2 threads there, 1 on Spark)",
            "",
            "| model | stage | Spark seconds | DuckDB seconds | Spark / DuckDB |",
            "|---|---|---:|---:|---:|",
        ]
        for name, m in list(sp["models"].items())[:8]:
            duck = duck_models.get(name, {}).get("seconds")
            ratio = f"{m['seconds'] / duck:,.0f}x" if duck else "-"
            duck_s = f"{duck:,.1f}" if duck is not None else "-"
            lines.append(f"| {name} | {m['stage']} | {m['seconds']:,.1f} | {duck_s} | {ratio} |")
    return lines


def _floor_s(floor: Mapping[str, Any] | None) -> str:
    if not floor:
        return "-"
    return f"{floor['seconds']:,.2f} s" if floor["seconds"] >= 1 else f"{floor['seconds']:.3f} s"


def _critical_paths(scales: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Node time, critical path and wall time",
        "",
        "dbt runs two nodes at once (threads: 2) on 2 cores, so a node's time includes the time it",
        "shared the cores with another node: the sum of node times exceeds the build's time, and a",
        "node time overstates what the node costs alone. The *critical path* is the longest chain",
        "of node times through the graph (a model waits for its parents and their tests), stage",
        "by stage; it is computed from the same inflated node times, so it is an upper bound of",
        "what the chain costs alone. The heavy models' time *alone* (next section) is the honest",
        "per-model figure. *Threads* is what dbt reported running at; *parse* is the build's own",
        "parse (dbt's perf_info.json) and how many of the project's files it parsed: all of them",
        "for the first build, only the changed ones for the increment, which starts from the full",
        "build's partial-parse state as a user's next build does. *Nodes* and *node time* count",
        "the data and unit tests apart in brackets.",
        "",
        "| customers | build | threads | wall | parse (files parsed) | dbt elapsed (3 stages) "
        "| nodes (tests) | node time (tests) | critical path | nodes on it | slowest on it |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in scales:
        for build in ("full", "incremental"):
            b = s.get(build)
            if not b or "critical_path" not in b:
                continue
            slowest = ", ".join(
                f"{c['node']} {c['seconds']:,.1f} s" for c in b["critical_path_heaviest"][:3]
            )
            parse = b.get("parse")
            parsed = (
                f"{_fmt_s(parse['seconds'])} ({parse['parsed_files']} of {parse['files']})"
                if parse
                else "-"
            )
            threads = ", ".join(str(t) for t in b.get("threads") or ()) or "-"
            tests = f" ({b['tests']})" if "tests" in b else ""
            test_s = f" ({_fmt_s(b['test_seconds'])})" if "test_seconds" in b else ""
            lines.append(
                f"| {s['customers']:,} | {build} | {threads} | {_fmt_s(b['seconds'])} | {parsed} "
                f"| {_fmt_s(b['dbt_elapsed'])} | {b['nodes']}{tests} | {_fmt_s(b['node_seconds'])}{test_s} "
                f"| {_fmt_s(b['critical_path'])} | {b['critical_path_nodes']} | {slowest} |"
            )
    return lines


def _heavy_tables(scales: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Heavy models against their floors (full build)",
        "",
        "Per heavy model: *node* is its time in the full build (2 threads) and the share of it",
        "during which another node ran; *alone* its time rerun on its own (`dbt run --select ...",
        "--full-refresh --threads 1`, the same inputs; dbt's per-node work included); *rows/s* its",
        "rows over its time alone. Its floors are measured right after, on the connection of the",
        "stage that builds it (same DuckDB file, memory_limit and threads, the plugin's registered",
        "functions, the key from the environment as the build takes it): *copy* is `create table as",
        "select * from <main input>`, *keyed* the copy plus the keyed values the model must compute",
        "(one pseudonym per row for each raw key and identifier column the sources' metadata",
        "declares; for vault_identifiers a pseudonym and a sealed value per distinct identifier).",
        "The ratios divide the time alone by each floor; **!** marks a floor above the model,",
        "which means the floor is wrong (listed under the table).",
    ]
    for s in scales:
        heavy = s.get("heavy")
        if not heavy:
            continue
        run = s.get("floor_run", {})
        settings = "; ".join(
            f"{t}: memory_limit {v['memory_limit']}, threads {v['threads']}"
            for t, v in (run.get("settings") or {}).items()
        )
        alone = s.get("alone_run", {})
        lines += [
            "",
            f"**{s['customers']:,} customers** (rerun alone: load {alone.get('load_start', '-')} / "
            f"{alone.get('load_max', '-')}; floors: load {run.get('load_start', '-')} / {run.get('load_max', '-')}; "
            f"DuckDB {settings or '-'})",
            "",
            "| model | main input | rows | node (2 threads) | alone | rows/s alone | copy floor | keyed floor "
            "| alone / copy | alone / keyed | keyed values |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        problems: list[str] = []
        for m in heavy:
            rows = f"{m['rows']:,}" if m.get("rows") is not None else "-"
            node = (
                f"{m['node_seconds']:,.2f} s ({m['overlapped'] / m['node_seconds']:.0%} overlapped)"
                if m.get("node_seconds")
                else "-"
            )
            alone_s = m.get("alone_seconds")
            rate = f"{m['rows'] / alone_s:,.0f}" if m.get("rows") and alone_s else "-"
            copy, keyed = m.get("copy_floor"), m.get("keyed_floor")
            values = m.get("keyed_values")
            described = "-" if values is None else (", ".join(values) if values else "none")
            lines.append(
                f"| {m['model']} | {m.get('input') or '-'} | {rows} | {node} "
                f"| {f'{alone_s:,.2f} s' if alone_s is not None else '-'} | {rate} "
                f"| {_floor_s(copy)} | {_floor_s(keyed)} "
                f"| {_ratio(alone_s, copy)} | {_ratio(alone_s, keyed)} | {described} |"
            )
            problems += [f"- {m['model']}: {p}" for p in m.get("problems") or ()]
            problems += [f"- {m['model']}: {n}" for n in m.get("notes") or ()]
        if problems:
            lines += ["", *problems]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--scales",
        default="10000,100000,1000000",
        help="comma-separated customer counts, run in this order (default: 10000,100000,1000000)",
    )
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DOCS,
        help="where performance.md and performance.json go (default: docs/)",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run from a tree with uncommitted changes; the page says so (refused for docs/ otherwise)",
    )
    parser.add_argument(
        "--key-from-env",
        action="store_true",
        help="build with CDP_MASTER_KEY of the environment (default: a fresh random key per scale)",
    )
    parser.add_argument(
        "--spark-scales",
        default="",
        help="comma-separated scales (of --scales) also built on Apache Spark, on the same landing "
        "zone after the DuckDB full build (needs make venv-spark spark-jar and a JDK)",
    )
    parser.add_argument("--hmac-rows", type=int, default=2_000_000)
    parser.add_argument("--no-hmac", action="store_true", help="skip the HMAC measurement")
    parser.add_argument(
        "--no-write", action="store_true", help="print the page, write no performance.md/json"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: write performance.md again from the out dir's performance.json "
        "(after a change to how the page is written; the figures and their commits stay)",
    )
    args = parser.parse_args(argv)
    try:
        args.scale_list = [int(x.replace("_", "")) for x in args.scales.split(",") if x]
    except ValueError:
        parser.error(f"--scales: comma-separated integers, got {args.scales!r}")
    if not args.scale_list or min(args.scale_list) < 100:
        parser.error("--scales: at least one scale, each at least 100 customers")
    try:
        args.spark_scale_list = [int(x.replace("_", "")) for x in args.spark_scales.split(",") if x]
    except ValueError:
        parser.error(f"--spark-scales: comma-separated integers, got {args.spark_scales!r}")
    if not set(args.spark_scale_list) <= set(args.scale_list):
        parser.error("--spark-scales: each must be one of --scales")
    if args.spark_scale_list and (missing := spark_missing()):
        parser.error(f"--spark-scales: the Spark build needs `{missing}` first")
    return args


def render_only(out_dir: Path) -> int:
    """Write ``performance.md`` again from ``performance.json``: nothing is measured, so the
    page keeps the commits and the machine its figures were measured at."""
    results_json = out_dir / "performance.json"
    try:
        results = json.loads(results_json.read_text())
    except FileNotFoundError:
        print(f"bench_build: --render-only: no {results_json} to render", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"bench_build: --render-only: {results_json} is not JSON: {exc}", file=sys.stderr)
        return 2
    (out_dir / "performance.md").write_text(render(results))
    _log(f"wrote {out_dir / 'performance.md'} from {results_json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["_dbt"]:
        return _run_staged(raw[1:])
    if raw[:1] == ["_floors"] and len(raw) == 4:
        return _run_floors(raw[1], raw[2], raw[3])
    args = parse_args(raw)
    if args.render_only:
        return render_only(args.out_dir.resolve())
    key = os.environ.get("CDP_MASTER_KEY") if args.key_from_env else None
    if args.key_from_env and not key:
        print("bench_build: --key-from-env: CDP_MASTER_KEY is not set", file=sys.stderr)
        return 2
    commit, changed = git_state()
    out_dir: Path = args.out_dir.resolve()
    refusal = (
        None if args.no_write else dirty_refusal(changed, out_dir, allow_dirty=args.allow_dirty)
    )
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    results_json, results_md = out_dir / "performance.json", out_dir / "performance.md"
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    as_of = (date.fromisoformat(REFERENCE_DATE) + timedelta(days=2)).isoformat()
    results: dict[str, Any] = (
        json.loads(results_json.read_text()) if results_json.exists() else {"scales": {}}
    )
    results["machine"] = machine()
    status = 0

    def write() -> None:
        if not args.no_write:  # after each scale: a long run keeps what it measured
            out_dir.mkdir(parents=True, exist_ok=True)
            results_json.write_text(json.dumps(results, indent=2) + "\n")
            results_md.write_text(render(results))

    try:
        if not args.no_hmac:
            results["hmac"] = {
                **bench_hmac(args.hmac_rows),
                "rows": args.hmac_rows,
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        for customers in args.scale_list:
            scale_dir = workdir / f"scale_{customers}"
            if scale_dir.exists():
                shutil.rmtree(scale_dir)
            scale_dir.mkdir(parents=True)
            scale: dict[str, Any] = {
                "customers": customers,
                "commit": commit,
                "dirty": bool(changed),
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            previous = results["scales"].get(str(customers))
            kept = None if customers in args.spark_scale_list else spark_kept(previous)
            results["scales"][str(customers)] = scale
            try:
                bench_scale(
                    scale,
                    scale_dir,
                    dbt_env(scale_dir, key),
                    as_of,
                    spark=customers in args.spark_scale_list,
                )
            except (StepFailed, OSError, KeyError, ValueError, duckdb.Error) as exc:
                scale["failed"] = _published(exc)
                keep_spark(scale, kept)
                _log(f"{customers:,} customers FAILED at {scale.get('step')}: {_short(exc)}")
                write()
                status = 1
                break  # a larger scale would fail the same way, later
            keep_spark(scale, kept)
            write()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(results))
    if not args.no_write:
        _log(f"wrote {results_md} and {results_json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
