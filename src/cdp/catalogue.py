"""The purposes and channels catalogues (``seeds/*.csv``), read once for all of Python.

dbt loads the same files as seeds and joins to them; Python code (the purge, the
access export, the auditor pack, the tests) reads them here, so a purpose or a
channel is written in exactly one place: a row of ``seeds/purposes.csv`` (with
its texts in ``seeds/notice_translations.csv``) or of ``seeds/channels.csv``
(docs/decisions.md, 54). ``seeds`` arguments name another project's seed folder
(a copy of the project); the default is this project's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from cdp import paths


class CatalogueError(Exception):
    """A seed file is missing or malformed; the message names the file."""


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(";") if part.strip())


def read_seed(name: str, seeds: Path | None = None) -> list[dict[str, str]]:
    """The rows of one seed file as dicts of strings (empty cells are ``""``); the seeds of the
    project the tools serve (``paths.project_dir()``) unless ``seeds`` is given."""
    file = (seeds or paths.project_dir() / "seeds") / name
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            return [{k: v or "" for k, v in row.items()} for row in csv.DictReader(handle)]
    except OSError as exc:
        raise CatalogueError(f"cannot read {file}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Purpose:
    """One row of ``seeds/purposes.csv`` (lists split on ``;``)."""

    purpose_code: str
    purpose_name: str
    description: str
    legal_basis: str
    is_consent_required: bool
    data_categories: tuple[str, ...]
    recipients: tuple[str, ...]
    legal_reference: str
    message_channels: tuple[str, ...]
    subject_categories: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    """One row of ``seeds/channels.csv``."""

    channel: str
    recipient_type: str
    description: str


def purposes(seeds: Path | None = None) -> tuple[Purpose, ...]:
    """The purposes catalogue, in file order."""
    try:
        return tuple(
            Purpose(
                purpose_code=row["purpose_code"].strip(),
                purpose_name=row["purpose_name"],
                description=row["description"],
                legal_basis=row["legal_basis"].strip(),
                is_consent_required=row["is_consent_required"].strip().lower() == "true",
                data_categories=_split(row["data_categories"]),
                recipients=_split(row["recipients"]),
                legal_reference=row["legal_reference"],
                message_channels=_split(row["message_channels"]),
                subject_categories=_split(row["subject_categories"]),
            )
            for row in read_seed("purposes.csv", seeds)
        )
    except KeyError as exc:
        raise CatalogueError(f"seeds/purposes.csv has no column {exc}") from None


def consent_purpose_codes(seeds: Path | None = None) -> tuple[str, ...]:
    """The codes of the purposes that need the person's consent, in file order."""
    return tuple(p.purpose_code for p in purposes(seeds) if p.is_consent_required)


def channels(seeds: Path | None = None) -> tuple[Channel, ...]:
    """The messaging channels, in file order."""
    try:
        return tuple(
            Channel(
                channel=row["channel"].strip(),
                recipient_type=row["recipient_type"].strip(),
                description=row["description"],
            )
            for row in read_seed("channels.csv", seeds)
        )
    except KeyError as exc:
        raise CatalogueError(f"seeds/channels.csv has no column {exc}") from None


def recipient_types(seeds: Path | None = None) -> dict[str, str]:
    """Messaging channel -> identifier type of its recipient (macros/staging/recipient_type.sql)."""
    return {c.channel: c.recipient_type for c in channels(seeds)}
