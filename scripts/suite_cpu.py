"""The test suite's CPU seconds per module and per test, from a run with CDP_TEST_CPU set.

    CDP_TEST_CPU=/tmp/cpu .venv/bin/python -m pytest ...
    .venv/bin/python scripts/suite_cpu.py /tmp/cpu [--top 25]

Each pytest process (one per xdist worker) writes ``<prefix>.<worker>.<pid>.json``: per test, the CPU
seconds (user + system) of that process and of the children it waited for, setup and teardown
included, so a shared fixture counts on the first test that needs it (pytests/conftest.py).
CPU time is what the suite costs on any machine, loaded or not; divided by the cores, it is
the least wall time the suite can take.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="the CDP_TEST_CPU value of the run")
    parser.add_argument("--top", type=int, default=25, help="how many tests to list")
    args = parser.parse_args(argv)
    prefix = Path(args.prefix)
    files = sorted(prefix.parent.glob(prefix.name + ".*.json"))
    if not files:
        print(f"error: no {prefix}.<worker>.<pid>.json: run pytest with CDP_TEST_CPU={prefix}")
        return 1
    tests: dict[str, float] = {}
    for file in files:
        tests.update(json.loads(file.read_text(encoding="utf-8")))
    modules: dict[str, float] = defaultdict(float)
    for nodeid, seconds in tests.items():
        modules[nodeid.split("::", 1)[0]] += seconds
    total = sum(tests.values())
    print(f"{len(tests)} tests in {len(files)} process(es): {total:,.0f} CPU seconds")
    print("\nper module (CPU s, share):")
    for module, seconds in sorted(modules.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:8.1f}  {seconds / total:6.1%}  {module}")
    print(f"\nthe {args.top} costliest tests (CPU s):")
    for nodeid, seconds in sorted(tests.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {seconds:8.1f}  {nodeid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
