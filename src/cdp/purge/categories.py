"""The catalogues the purge reads: retention periods per data category, and purposes (the
purposes from :mod:`cdp.catalogue`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cdp import catalogue, paths
from cdp.catalogue import Purpose as Purpose
from cdp.purge.core import PurgeError


@dataclass(frozen=True)
class Category:
    data_category: str
    retention_days: int
    retention_anchor: str
    legal_reference: str


def load_categories(path: Path | None = None) -> dict[str, Category]:
    """The retention catalogue (``seeds/data_categories.csv``)."""
    source = path or paths.project_dir() / "seeds" / "data_categories.csv"
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return {
            row["data_category"]: Category(
                data_category=row["data_category"],
                retention_days=int(row["retention_days"]),
                retention_anchor=row["retention_anchor"],
                legal_reference=row["legal_reference"],
            )
            for row in rows
        }
    except (OSError, KeyError, ValueError) as exc:
        raise PurgeError(f"cannot read the retention catalogue {source}: {exc}") from None


def load_purposes(path: Path | None = None) -> list[Purpose]:
    """The purposes catalogue: the project's ``seeds/purposes.csv``, or the ``purposes.csv``
    file (or seeds folder) ``path``; read by the one loader of the catalogues
    (:mod:`cdp.catalogue`)."""
    seeds = path.parent if path is not None and path.suffix == ".csv" else path
    try:
        return list(catalogue.purposes(seeds))
    except catalogue.CatalogueError as exc:
        raise PurgeError(f"cannot read the purposes catalogue: {exc}") from None


REQUIRED_CATEGORIES: Final = (
    "site_activity",
    "communication_activity",
    "purchase_history",
    "consent_records",
    "subject_requests",
    "customer_master_data",
    "destruction_records",
)
