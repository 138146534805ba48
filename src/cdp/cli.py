"""``cdp``: the project's command line (``python -m cdp.cli`` or ``cdp``).

    cdp demo    generate a demo landing zone and build the warehouse on it
    cdp check   check configuration (key, landing zone) without writing anything
    cdp build   check, then ``dbt build`` (extra arguments go to dbt), then publish

Every other tool of the package is a subcommand too, run by its module's own
``main`` (:data:`DELEGATED`; ``cdp --help`` lists them, ``cdp NAME --help``
shows each one's options): publish, generate, purge, erase, access, vault,
keys, rotate, evidence, pack, gate, quality, disclosure-audit, spark-build, spark-thrift.

dbt runs in-process (dbtRunner). Every check happens before dbt opens a
database file, so a configuration error writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cdp import keys, paths, publish, stages
from cdp.preflight import ConfigurationError, check_landing_zone


class ConfigError(Exception):
    """A configuration problem, reported as one clear line before anything is written."""


def _say(message: str) -> None:
    print(f"cdp: {message}", file=sys.stderr, flush=True)


def check_raw_zone(raw: Path) -> None:
    """The landing zone exists and matches the contract exactly: the build's own check."""
    try:
        check_landing_zone(raw)
    except ConfigurationError as exc:
        raise ConfigError(str(exc.msg).removeprefix("cdp: ")) from None


def preflight() -> keys.MasterKey:
    """Every configuration check, in the order a user would fix them.

    The key is taken out of the environment here (``CDP_MASTER_KEY`` is removed
    from ``os.environ``): the dbt stages that need it get it in memory.
    """
    master = preflight_key()
    check_raw_zone(paths.raw_db())
    return master


def preflight_key() -> keys.MasterKey:
    """The master key, taken out of the environment, or one clear ConfigError."""
    try:
        return keys.take_master_key()
    except keys.KeyConfigError as exc:
        raise ConfigError(str(exc)) from None


def run_dbt(args: Sequence[str], master: keys.MasterKey) -> bool:
    """Run one dbt command in-process, stage by stage (cdp.stages); True on success."""
    started = time.monotonic()
    with keys.holding(master):
        outcome = stages.run(args)
    status = "ok" if outcome.success else "FAILED"
    if not outcome.success and outcome.messages and outcome.messages[-1].startswith("cdp:"):
        _say(outcome.messages[-1])
    _say(
        f"dbt {' '.join(args)} (privacy, analytics, vault stages): {status} in "
        f"{time.monotonic() - started:.1f} s"
    )
    return outcome.success


def print_accounting(warehouse: Path) -> None:
    """How every raw row was accounted for, from the built warehouse (as the evidence records it)."""
    from cdp import evidence

    rows = evidence.row_accounting(warehouse) or []
    print(
        f"{'raw table':<28}{'raw':>10}{'kept':>10}{'duplicate':>11}{'superseded':>12}{'quarantined':>13}"
    )
    for r in rows:
        print(
            f"{r['source_table']:<28}{r['raw']:>10}{r['kept']:>10}{r['duplicate']:>11}"
            f"{r['superseded']:>12}{r['quarantined']:>13}"
        )


def record_evidence(since: float) -> None:
    """Append the build's evidence (its run_results, as_of, counts) to the evidence record."""
    from cdp import evidence

    try:
        # Every stage's results: privacy, analytics and vault (cdp.stages).
        entry = evidence.record(stages.stage_target_paths(), since=since)
    except evidence.EvidenceError as exc:
        _say(f"evidence not recorded: {exc}")
        return
    verdict = evidence.verdict(entry)
    _say(
        f"evidence entry {entry['seq']} recorded in {evidence.log_file()}: "
        f"{verdict.passed}/{verdict.tests} privacy tests passed, {verdict.warned} warned, "
        f"{verdict.failed} failed"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    if not os.environ.get(keys.ENV_KEY) and not os.environ.get(keys.ENV_KEY_FILE):
        key_file = keys.create_demo_key()
        os.environ[keys.ENV_KEY_FILE] = str(key_file)
    master = preflight_key()  # a bad key configured by the user stops the demo here

    data = paths.PROJECT_ROOT / "data"
    for var in (
        "CDP_RAW_DB",
        "CDP_WAREHOUSE_DB",
        "CDP_VAULT_DB",
        "CDP_TRUTH_DB",
        "CDP_PUBLISHED_DIR",
    ):
        if os.environ.get(var):
            _say(
                f"demo ignores {var}; it uses its own files under {data} (use `cdp build` for yours)"
            )
        os.environ.pop(var, None)
    os.environ.pop("CDP_TARGET", None)
    for path in (paths.raw_db(), paths.truth_file(), paths.warehouse_db(), paths.vault_db()):
        if path.exists():
            path.unlink()
    data.mkdir(mode=0o700, exist_ok=True)

    _say(f"generating a demo landing zone: {args.customers} customers, seed {args.seed}")
    generate = [
        sys.executable,
        str(paths.PROJECT_ROOT / "scripts" / "generate_landing.py"),
        "--customers",
        str(args.customers),
        "--seed",
        str(args.seed),
    ]
    if args.reference_date:
        generate += ["--reference-date", args.reference_date]
    # The generator needs no key: its environment has none.
    if subprocess.run(generate, check=False, env=keys.child_environment()).returncode != 0:
        _say("generating the landing zone failed (see above)")
        return 1
    check_raw_zone(paths.raw_db())
    started = time.time()
    built = run_dbt(["build"], master)
    record_evidence(started)
    if not built:
        return 1
    print_accounting(paths.warehouse_db())
    _say(f"warehouse built: {paths.warehouse_db()} (vault: {paths.vault_db()})")
    return 0 if publish.publish_checked() else 1


def cmd_check(_: argparse.Namespace) -> int:
    master = preflight()
    _say(
        f"configuration OK: key {master.version_label} from {master.source}; landing zone {paths.raw_db()}"
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    master = preflight()
    started = time.time()
    built = run_dbt(["build", *args.dbt_args], master)
    record_evidence(started)
    if not built:
        return 1
    return 0 if publish.publish_checked() else 1


# Every other tool is a program of its own: `cdp NAME ARGS` runs MODULE.main(ARGS), which
# parses its own arguments (`cdp NAME --help`). The old entry points still work (python -m
# MODULE, scripts/generate_landing.py, scripts/purge.py); pytests/test_cli.py fails when a
# module with a main() is missing here.
DELEGATED: dict[str, tuple[str, str]] = {
    "publish": (
        "cdp.publish",
        "validate the last build's marts (audit, release gate, quality) and publish them",
    ),
    "generate": ("cdp.generator.cli", "write a synthetic landing zone and its ground truth"),
    "purge": ("cdp.purge.cli", "the retention purge and erasure of the raw zone"),
    "erase": (
        "cdp.erase",
        "execute verified erasure requests down to the bytes (purge, rewrite, rebuild)",
    ),
    "access": (
        "cdp.access",
        "subject access / portability export (privacy officer only; logged in the vault)",
    ),
    "vault": (
        "cdp.vault",
        "the privacy officer's re-identification tool (logged); verify, verify-log",
    ),
    "keys": ("cdp.keys", "check the master key configuration, or write a demo key"),
    "rotate": ("cdp.rotate", "rotate the master key version (a verified full rebuild)"),
    "evidence": ("cdp.evidence", "the build evidence record: record, verify (tamper check), show"),
    "pack": ("cdp.pack.build", "generate the auditor pack (docs, records, lineage, notices)"),
    "gate": ("cdp.pack.gate", "the privacy gate: computed PII lineage against zones and meta"),
    "quality": (
        "cdp.gx_checkpoint",
        "the Great Expectations checkpoint over the published marts (HTML report)",
    ),
    "disclosure-audit": (
        "cdp.disclosure_audit",
        "audit the published release: the interval of every suppressed number",
    ),
    "spark-build": (
        "cdp.spark_stage",
        "load the landing zone into local Spark and build the part ported to Spark (.venv-spark)",
    ),
    "spark-thrift": (
        "cdp.spark_thrift",
        "serve the privacy stage's Spark session over Thrift on 127.0.0.1 (.venv-spark)",
    ),
}


def run_delegated(command: str, argv: Sequence[str]) -> int:
    module = importlib.import_module(DELEGATED[command][0])
    return int(module.main(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this command or dbt creates (databases, WAL, target/, logs/,
    # reports) is owner-only, before anything is created.
    os.umask(keys.OWNER_ONLY_UMASK)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in DELEGATED:
        return run_delegated(arguments[0], arguments[1:])
    parser = argparse.ArgumentParser(
        prog="cdp",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="`cdp COMMAND --help` shows a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="generate a demo landing zone and build the warehouse on it")
    demo.add_argument(
        "--customers", type=int, default=2000, help="synthetic customers (default 2000)"
    )
    demo.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    demo.add_argument(
        "--reference-date", help="YYYY-MM-DD the demo data is generated around (default today)"
    )
    demo.set_defaults(func=cmd_demo)
    check = sub.add_parser("check", help="check key and landing zone; writes nothing")
    check.set_defaults(func=cmd_check)
    build = sub.add_parser("build", help="check, then dbt build; extra arguments go to dbt")
    build.set_defaults(func=cmd_build)
    for name, (_module, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text)  # listed here; run by run_delegated above
    # Everything `build` does not know goes to dbt (`cdp build --select x --vars ...`).
    args, unknown = parser.parse_known_args(arguments)
    if unknown and args.command != "build":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.dbt_args = unknown
    try:
        return int(args.func(args))
    except (ConfigError, keys.KeyConfigError) as exc:
        _say(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
