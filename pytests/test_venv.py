"""The virtual environment holds the bytecode of what every dbt process imports (decision 99).

`make venv` installs with ``pip --no-compile`` and then byte-compiles the venv with
``compileall``. Without that step, and with ``PYTHONDONTWRITEBYTECODE`` set (as on these
machines), Python compiles dbt, pandas and Great Expectations again in every process it starts:
about 4 CPU seconds per dbt or ``cdp`` process, and the suite starts hundreds.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from pathlib import Path

#: Modules every dbt build (and every ``cdp`` command that publishes) imports, by path under
#: site-packages: found without importing them, so this test costs nothing.
IMPORTED_BY_EVERY_BUILD = (
    "dbt/cli/main.py",
    "dbt/task/test.py",
    "dbt/adapters/duckdb/impl.py",
    "jinja2/environment.py",
    "pandas/core/frame.py",
    "great_expectations/data_context/data_context/abstract_data_context.py",
)


def test_the_venv_is_byte_compiled() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    missing = []
    for name in IMPORTED_BY_EVERY_BUILD:
        source = site / name
        assert source.is_file(), f"{source}: not installed"
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.is_file() or cached.stat().st_mtime < source.stat().st_mtime:
            missing.append(name)
    assert not missing, (
        f"no bytecode in {site} for {missing}: every process compiles them again when "
        "PYTHONDONTWRITEBYTECODE is set; `make venv` byte-compiles the venv (docs/decisions.md, "
        "99): remove the venv and run it again"
    )
