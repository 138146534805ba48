"""A dbt plugin that takes the master key out of the environment of every dbt command.

dbt renders ``env_var()`` in models, macros, ``dbt show --inline`` and
``dbt run-operation`` long before an adapter plugin runs: measured here, an
analyst's ``dbt show --inline "select '{{ env_var('CDP_MASTER_KEY') }}'"``
printed the key and dbt wrote it to ``target/`` and ``logs/``. dbt loads
every importable module named ``dbt_*`` that lists ``plugins`` when it loads
a project, before it parses or compiles anything; this one removes
``CDP_MASTER_KEY`` from ``os.environ`` there, so ``env_var('CDP_MASTER_KEY')``
fails in every dbt command of this project. It also sets the owner-only umask
before dbt writes ``target/``, and tightens the log dbt already opened. The stages that need the key
get it from ``cdp build`` in memory, or from ``CDP_MASTER_KEY_FILE`` (a path:
no Jinja can read a file, and DuckDB is locked down before any SQL runs).
"""

from __future__ import annotations

import os
from pathlib import Path

from dbt.flags import get_flags
from dbt.plugins.manager import dbtPlugin


class KeyGuard(dbtPlugin):
    """Removes ``CDP_MASTER_KEY`` from the environment when dbt loads the cdp project."""

    def initialize(self) -> None:
        if self.project_name != "cdp":
            return
        from cdp import keys

        keys.guard_dbt_environment()
        # Whatever dbt writes from here on (target/, the manifest, run results) is
        # owner-only, also for a plain `dbt` run from a shell with umask 022; the
        # log dbt opened before this point is tightened in place.
        os.umask(keys.OWNER_ONLY_UMASK)
        log_path = getattr(get_flags(), "LOG_PATH", None)  # type: ignore[no-untyped-call]
        if log_path:
            folder = Path(str(log_path))
            for path in (folder, folder / "dbt.log"):
                if path.exists() and path.stat().st_uid == os.getuid():
                    os.chmod(path, 0o700 if path.is_dir() else 0o600)


plugins = [KeyGuard]
