"""Run dbt in-process (dbtRunner) from the project root, and let go of DuckDB afterwards.

dbt-duckdb keeps its DuckDB environment (and so the database files, and the
plugin that holds the derived keys) open in a class attribute after a command
ends. Closing it after every command means a later read of the warehouse in
the same process works, and the next command builds a fresh environment,
re-reading the key from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp import paths

os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


@dataclass
class DbtOutcome:
    """What one dbt command did: success, every log message, and dbt's own result."""

    success: bool
    messages: list[str] = field(default_factory=list)
    exception: BaseException | None = None
    result: Any = None

    @property
    def output(self) -> str:
        text = "\n".join(self.messages)
        return text + ("\n" + str(self.exception) if self.exception else "")


def release_duckdb() -> None:
    """Close the DuckDB environment dbt-duckdb keeps between commands."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    if env is not None:
        closer: Callable[[], None] | None = getattr(env, "close", None)
        if closer is not None:
            closer()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


def invoke(
    args: Sequence[str],
    *,
    project_dir: str | None = None,
    extra: Sequence[str] = (),
    echo: bool = True,
    manifest: Any = None,
) -> DbtOutcome:
    """``dbt <args>`` in-process; log lines are collected (and printed by dbt when ``echo``).

    ``manifest``: a parsed manifest to reuse (no second parse), as :mod:`cdp.stages` does.
    """
    from dbt.cli.main import dbtRunner

    root = project_dir or str(paths.project_dir())
    messages: list[str] = []

    def collect(event: Any) -> None:
        messages.append(str(event.info.msg))

    full = [*args, "--project-dir", root, "--profiles-dir", root, *extra]
    if not echo:
        full.append("--quiet")
    try:
        outcome = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(full)
    finally:
        release_duckdb()
    return DbtOutcome(bool(outcome.success), messages, outcome.exception, outcome.result)
