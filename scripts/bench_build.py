#!/usr/bin/env python3
"""Benchmark the whole warehouse build at several scales and write docs/performance.md.

    .venv/bin/python scripts/bench_build.py --scales 10000,100000
    .venv/bin/python scripts/bench_build.py --scales 1000000 --keep

For each scale (number of synthetic customers, with their events, orders and
messages in the generator's proportions) the script, each step in a process of
its own so that its peak memory is its own:

  1. generates the landing zone (scripts/generate_landing.py, batch 1);
  2. times `dbt parse` with partial parsing off (dbt's own start-up cost);
  3. runs a full `dbt build` at a fixed as_of;
  4. generates batch 2, about 1% of the customers, and runs `dbt build` again
     (the daily increment);
  5. reads target/run_results.json of both builds for each node's time, and
     counts the rows of the heaviest models for rows per second.

Once per run it also measures keyed hashing (the HMAC macro) beside DuckDB's
native sha256 (scripts/bench_hmac.py), on the same machine at the same time.

Results accumulate in docs/performance.json (one entry per scale, the latest
run of each scale wins) and docs/performance.md is rewritten from it, with the
machine it ran on. A benchmark, not a test: the figures depend on the machine
and on what else it is doing, which the table records (load average).
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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
RESULTS_JSON: Final = ROOT / "docs" / "performance.json"
RESULTS_MD: Final = ROOT / "docs" / "performance.md"
REFERENCE_DATE: Final = "2026-11-01"
SEED: Final = 42
HEAVIEST: Final = 6

# Runs a command and reports its peak resident memory: RUSAGE_CHILDREN of a
# process whose only child is the command is the command's own peak.
_WRAPPER: Final = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'__PEAK_RSS_KB__ {peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Step:
    """One measured process."""

    seconds: float
    peak_mb: float
    output: str


@dataclass
class Build:
    """One dbt build: wall time, memory and what dbt says of its nodes."""

    seconds: float
    peak_mb: float
    dbt_elapsed: float
    node_seconds: float
    nodes: int
    heaviest: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Scale:
    customers: int
    raw_rows: int
    generate_seconds: float
    generate_peak_mb: float
    parse_seconds: float
    full: Build
    increment_customers: int
    increment_raw_rows: int
    incremental: Build
    load_average: float
    measured_at: str


def _log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def measured(command: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> Step:
    """Run ``command``; fail loudly with its output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    match = re.search(r"__PEAK_RSS_KB__ (\d+)", result.stderr)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{output[-4000:]}")
    return Step(seconds, int(match.group(1)) / 1024 if match else float("nan"), output)


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


def read_build(step: Step, target: Path, warehouse_db: Path) -> Build:
    """Per-node times from run_results.json; rows of the heaviest table models."""
    results = json.loads((target / "run_results.json").read_text())
    nodes = [r for r in results["results"] if r["unique_id"].startswith("model.")]
    node_seconds = sum(float(r["execution_time"]) for r in results["results"])
    heaviest = sorted(nodes, key=lambda r: float(r["execution_time"]), reverse=True)[:HEAVIEST]
    manifest = json.loads((target / "manifest.json").read_text())
    rows: list[dict[str, Any]] = []
    con = duckdb.connect(str(warehouse_db), read_only=True)
    try:
        for result in heaviest:
            node = manifest["nodes"][result["unique_id"]]
            relation = f'"{node["schema"]}"."{node["alias"]}"'
            materialized = node["config"]["materialized"]
            count: int | None = None
            if node["database"] == warehouse_db.stem and materialized != "ephemeral":
                row = con.execute(f"select count(*) from {relation}").fetchone()
                count = int(row[0]) if row else None
            seconds = float(result["execution_time"])
            rows.append(
                {
                    "model": node["name"],
                    "materialized": materialized,
                    "seconds": round(seconds, 2),
                    "rows": count,
                    "rows_per_second": round(count / seconds) if count and seconds else None,
                }
            )
    finally:
        con.close()
    return Build(
        seconds=round(step.seconds, 1),
        peak_mb=round(step.peak_mb),
        dbt_elapsed=round(float(results["elapsed_time"]), 1),
        node_seconds=round(node_seconds, 1),
        nodes=len(results["results"]),
        heaviest=rows,
    )


def dbt_command(*args: str, target: Path) -> list[str]:
    dbt = str(Path(sys.executable).with_name("dbt"))
    return [
        dbt,
        *args,
        "--project-dir",
        str(ROOT),
        "--profiles-dir",
        str(ROOT),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
    ]


def bench_scale(customers: int, workdir: Path, env: dict[str, str], as_of: str) -> Scale:
    raw_db = Path(env["CDP_RAW_DB"])
    generator = [sys.executable, str(ROOT / "scripts" / "generate_landing.py")]
    common = ["--seed", str(SEED), "--reference-date", REFERENCE_DATE, "--quiet"]
    files = ["--raw-db", env["CDP_RAW_DB"], "--truth-db", env["CDP_TRUTH_DB"]]

    _log(f"{customers:,} customers: generating batch 1")
    generated = measured([*generator, "--customers", str(customers), *common, *files], env)
    raw_rows = raw_row_count(raw_db)
    _log(f"  {raw_rows:,} raw rows in {generated.seconds:,.1f} s")

    _log("  dbt parse (no partial parse)")
    parsed = measured(dbt_command("parse", "--no-partial-parse", target=workdir / "parse"), env)

    vars_ = ["--vars", json.dumps({"as_of": as_of})]
    _log("  full dbt build")
    full_target = workdir / "full"
    full_step = measured(dbt_command("build", *vars_, target=full_target), env)
    full = read_build(full_step, full_target, Path(env["CDP_WAREHOUSE_DB"]))
    _log(f"  full build {full.seconds:,.1f} s, peak {full.peak_mb:,.0f} MB")

    increment = max(1, customers // 100)
    _log(f"  generating batch 2 ({increment:,} new customers, one more day of events)")
    measured([*generator, "--customers", str(increment), "--batch", "2", *common, *files], env)
    increment_rows = raw_row_count(raw_db) - raw_rows

    _log("  incremental dbt build")
    inc_target = workdir / "incremental"
    inc_step = measured(dbt_command("build", *vars_, target=inc_target), env)
    incremental = read_build(inc_step, inc_target, Path(env["CDP_WAREHOUSE_DB"]))
    _log(f"  incremental build {incremental.seconds:,.1f} s, peak {incremental.peak_mb:,.0f} MB")

    return Scale(
        customers=customers,
        raw_rows=raw_rows,
        generate_seconds=round(generated.seconds, 1),
        generate_peak_mb=round(generated.peak_mb),
        parse_seconds=round(parsed.seconds, 1),
        full=full,
        increment_customers=increment,
        increment_raw_rows=increment_rows,
        incremental=incremental,
        load_average=round(os.getloadavg()[0], 2),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


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


def _fmt_s(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds >= 100 else f"{seconds:,.1f} s"


GOAL_CUSTOMERS: Final = 1_000_000
GOAL_FULL_SECONDS: Final = 600
GOAL_PEAK_GIB: Final = 8
GOAL_INCREMENTAL_SHARE: Final = 0.15


def goals(scales: list[dict[str, Any]]) -> list[str]:
    """Issue 9's goals, checked against the measured 1M-customer scale (if there is one)."""
    lines = ["", "## Goals (issue 9), at 1,000,000 customers", ""]
    at_goal = [s for s in scales if s["customers"] == GOAL_CUSTOMERS]
    if not at_goal:
        return [*lines, "Not measured yet: run the benchmark with `--scales 1000000`."]
    full, inc = at_goal[0]["full"], at_goal[0]["incremental"]
    share = inc["seconds"] / full["seconds"]
    checks = [
        (
            "full build under 10 minutes",
            full["seconds"] < GOAL_FULL_SECONDS,
            _fmt_s(full["seconds"]),
        ),
        (
            "peak memory under 8 GiB",
            max(full["peak_mb"], inc["peak_mb"]) / 1024 < GOAL_PEAK_GIB,
            f"{max(full['peak_mb'], inc['peak_mb']) / 1024:,.2f} GiB",
        ),
        (
            "1% incremental build under 15% of the full build",
            share < GOAL_INCREMENTAL_SHARE,
            f"{share:.0%}",
        ),
    ]
    lines += ["| goal | measured | met |", "|---|---:|---|"]
    lines += [f"| {goal} | {value} | {'yes' if met else 'no'} |" for goal, met, value in checks]
    return lines


def render(results: dict[str, Any]) -> str:
    scales = sorted(results["scales"].values(), key=lambda s: s["customers"])
    lines = [
        "# Performance",
        "",
        "Generated by `scripts/bench_build.py`; do not edit by hand. Reproduce with",
        "",
        "```sh",
        "make venv",
        ".venv/bin/python scripts/bench_build.py --scales 10000,100000,1000000",
        "```",
        "",
        "Each scale is a fresh landing zone from the generator (seed 42, reference date",
        f"{REFERENCE_DATE}, default dirty-data rate), built at a fixed `as_of`. The increment is",
        "batch 2 of the generator: 1% new customers and one more day of events, orders and",
        "messages. Every step runs in its own process; *peak* is that process's peak resident",
        "memory. *dbt overhead* is the build's wall time minus dbt's own elapsed time (process",
        "start, parsing, manifest): the cost of dbt itself rather than of the SQL. In the",
        "model tables, *rows* is the table's size after the build (an incremental model",
        "processed fewer) and *-* a relation outside the warehouse file (the vault).",
        "",
        "| customers | raw rows | generate | dbt parse | full build | peak (full) "
        "| increment rows | incremental build | incr. / full | dbt overhead | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scales:
        full, inc = s["full"], s["incremental"]
        lines.append(
            f"| {s['customers']:,} | {s['raw_rows']:,} | {_fmt_s(s['generate_seconds'])} "
            f"| {_fmt_s(s['parse_seconds'])} | {_fmt_s(full['seconds'])} "
            f"| {full['peak_mb'] / 1024:,.2f} GiB | {s['increment_raw_rows']:,} "
            f"| {_fmt_s(inc['seconds'])} | {inc['seconds'] / full['seconds']:.0%} "
            f"| {_fmt_s(full['seconds'] - full['dbt_elapsed'])} | {s['load_average']} |"
        )
    noted = [s for s in scales if s.get("note")]
    if noted:  # what a reader must know about a row (set in docs/performance.json)
        lines += [""] + [f"Note on {s['customers']:,} customers: {s['note']}" for s in noted]
    lines += goals(scales)
    for build, title in (("full", "full build"), ("incremental", "incremental build")):
        lines += ["", f"## Heaviest models of the {title}", ""]
        for s in scales:
            b = s[build]
            lines += [
                f"**{s['customers']:,} customers** ({b['nodes']} nodes, "
                f"{_fmt_s(b['node_seconds'])} of node time over 2 threads)",
                "",
                "| model | materialized | seconds | rows | rows/s |",
                "|---|---|---:|---:|---:|",
            ]
            for m in b["heaviest"]:
                rows = f"{m['rows']:,}" if m["rows"] is not None else "-"
                rate = f"{m['rows_per_second']:,}" if m["rows_per_second"] else "-"
                lines.append(
                    f"| {m['model']} | {m['materialized']} | {m['seconds']:,.1f} | {rows} | {rate} |"
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--scales",
        default="10000,100000,1000000",
        help="comma-separated customer counts (default: 10000,100000,1000000)",
    )
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--hmac-rows", type=int, default=2_000_000)
    parser.add_argument("--no-hmac", action="store_true", help="skip the HMAC measurement")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, leave docs/ alone"
    )
    args = parser.parse_args(argv)
    try:
        args.scale_list = [int(x.replace("_", "")) for x in args.scales.split(",") if x]
    except ValueError:
        parser.error(f"--scales: comma-separated integers, got {args.scales!r}")
    if not args.scale_list or min(args.scale_list) < 100:
        parser.error("--scales: at least one scale, each at least 100 customers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    as_of = (date.fromisoformat(REFERENCE_DATE) + timedelta(days=2)).isoformat()
    results: dict[str, Any] = (
        json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"scales": {}}
    )
    results["machine"] = machine()
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
            env = {
                **os.environ,
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "CDP_TARGET": "ci",
                "CDP_MASTER_KEY": secrets.token_urlsafe(48),
                "CDP_RAW_DB": str(scale_dir / "raw.duckdb"),
                "CDP_WAREHOUSE_DB": str(scale_dir / "warehouse.duckdb"),
                "CDP_VAULT_DB": str(scale_dir / "vault.duckdb"),
                "CDP_TRUTH_DB": str(scale_dir / "truth.duckdb"),
            }
            env.pop("CDP_MASTER_KEY_FILE", None)
            scale = bench_scale(customers, scale_dir, env, as_of)
            results["scales"][str(customers)] = asdict(scale)
            if not args.no_write:  # after each scale: a long run keeps what it measured
                RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
                RESULTS_MD.write_text(render(results))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(results))
    if not args.no_write:
        _log(f"wrote {RESULTS_MD.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
