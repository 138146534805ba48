"""Where things live. Every path is relative to the project root unless set."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_dir() -> Path:
    """The dbt project the tools serve: ``DBT_PROJECT_DIR`` if set (as dbt reads it), else
    this repository. Its sources' metadata, seeds and models are what the tools read."""
    value = os.environ.get("DBT_PROJECT_DIR")
    return Path(value).resolve() if value else PROJECT_ROOT


def _from_env(var: str, default: str) -> Path:
    value = os.environ.get(var)
    path = Path(value) if value else Path(default)
    return path if path.is_absolute() else PROJECT_ROOT / path


def raw_db() -> Path:
    """The raw landing zone (``CDP_RAW_DB``, default ``data/raw.duckdb``)."""
    return _from_env("CDP_RAW_DB", "data/raw.duckdb")


def warehouse_db() -> Path:
    """The dbt target database (``CDP_WAREHOUSE_DB``, default ``data/warehouse.duckdb``)."""
    return _from_env("CDP_WAREHOUSE_DB", "data/warehouse.duckdb")


def vault_db() -> Path:
    """The encrypted re-identification map (``CDP_VAULT_DB``, default ``data/vault.duckdb``)."""
    return _from_env("CDP_VAULT_DB", "data/vault.duckdb")


def truth_file() -> Path:
    """The generator's ground truth, kept outside the landing zone."""
    return _from_env("CDP_TRUTH_DB", "data/truth.duckdb")


def demo_key_file() -> Path:
    """Where ``make demo`` keeps the random local master key it creates."""
    return PROJECT_ROOT / ".secrets" / "master.key"


def published_dir() -> Path:
    """Where BI reads the anonymised marts (``CDP_PUBLISHED_DIR``, default ``data/published``)."""
    return _from_env("CDP_PUBLISHED_DIR", "data/published")


def published_db() -> Path:
    """The published DuckDB file: the anonymised marts and nothing else, replaced atomically."""
    return published_dir() / "marts.duckdb"


def published_parquet() -> Path:
    """A symlink to the current version's folder of Parquet files, one per mart."""
    return published_dir() / "parquet"


def quality_report_dir() -> Path:
    """The Great Expectations HTML report for the auditor pack (``CDP_QUALITY_REPORT_DIR``)."""
    return _from_env("CDP_QUALITY_REPORT_DIR", "data/auditor/quality")
