"""The landing zone as the sources' metadata declares it: the one place that says what each raw
table holds and how the product treats it (docs/decisions.md, 57).

Every landing table is a dbt source table in ``models/staging/<source>/_<source>__sources.yml``
whose source carries ``meta: {landing: true}``. Its columns carry their DuckDB type
(``data_type``, the landing-zone contract) and their ``meta``:

- ``pii``: ``direct``, ``quasi`` or ``none`` (the privacy gate reads it);
- ``identifier_type``: the identifier the column holds (``email``, ``phone``, ``customer_id``,
  ``loyalty_card``, ``anonymous_id``, ``push_token``), or ``identifier_type_column``: the
  column of the same row naming the identifier type (a request's ``subject_id_type``), or
  ``identifier_type_by_channel``: the column naming the channel the value was sent on (a
  message's recipient: the channel's recipient type);
- ``free_text: true``: text where a person may have typed or carried anyone's identifier;
- ``raw_key: true``: a source id, staged only as a keyed pseudonym (decision 50).

The table's ``meta`` says how long it is kept and what an erasure does:

- ``data_category``: its category in ``seeds/data_categories.csv`` (retention period);
- ``record_time``: SQL over the raw columns for when a row was made (destruction records);
- ``retention_rule``: how the purge judges expiry: ``record_time`` (the default: a row
  expires ``retention_days`` after ``retention_time``, itself ``record_time`` unless given,
  except rows matching ``retention_keep``), or a rule the purge names (``inactivity``,
  ``latest_version``, ``parent``, ``messages``, ``consent_log``);
- ``erasure``: what an erasure does to the person's rows: ``delete_rows`` (the default),
  ``null_fields`` or ``replace_fields`` with ``erasure_fields``; ``free_text_erasure`` what it
  does to someone else's row whose free text names the person (default ``null_fields``);
- ``parent``: ``{table: schema.table, key: column}`` for a table whose rows belong to a row
  of another (order lines to their order): they are kept, exported and destroyed with it.

The vault, row accounting and quarantine models read the same metadata from dbt's graph
(``macros/sources``); the purge, the access export and the contract read it here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from cdp import paths

#: What a column's ``identifier_type`` may say (the normalisers of cdp.normalise).
IDENTIFIER_TYPES: Final = (
    "customer_id",
    "email",
    "phone",
    "loyalty_card",
    "anonymous_id",
    "push_token",
)
#: The purge's retention rules (cdp.purge); ``record_time`` is the generic one.
RETENTION_RULES: Final = (
    "record_time",
    "inactivity",
    "latest_version",
    "parent",
    "messages",
    "consent_log",
)
ERASURE_METHODS: Final = ("delete_rows", "null_fields", "replace_fields")
PII_LEVELS: Final = ("direct", "quasi", "none")


class CatalogError(Exception):
    """The sources' metadata is incomplete or contradicts itself; the message says where."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pii(self) -> str:
        return str(self.meta.get("pii", ""))

    @property
    def identifier_type(self) -> str | None:
        value = self.meta.get("identifier_type")
        return None if value is None else str(value)

    @property
    def identifier_type_column(self) -> str | None:
        value = self.meta.get("identifier_type_column")
        return None if value is None else str(value)

    @property
    def identifier_type_by_channel(self) -> str | None:
        value = self.meta.get("identifier_type_by_channel")
        return None if value is None else str(value)

    @property
    def is_identifier(self) -> bool:
        return bool(
            self.identifier_type or self.identifier_type_column or self.identifier_type_by_channel
        )

    @property
    def free_text(self) -> bool:
        return bool(self.meta.get("free_text"))

    @property
    def raw_key(self) -> bool:
        return bool(self.meta.get("raw_key"))


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise CatalogError(f"{self.qualified} has no column {name}")

    @property
    def staging_model(self) -> str:
        """The name of its staging model (the staging recipe's: every raw row with a status)."""
        return f"stg_{self.source}__{self.name}_triaged"

    @property
    def data_category(self) -> str:
        return str(self.meta.get("data_category", ""))

    @property
    def record_time(self) -> str:
        return str(self.meta.get("record_time") or "_loaded_at")

    @property
    def retention_time(self) -> str:
        return str(self.meta.get("retention_time") or self.record_time)

    @property
    def retention_rule(self) -> str:
        return str(self.meta.get("retention_rule") or "record_time")

    @property
    def retention_keep(self) -> str | None:
        value = self.meta.get("retention_keep")
        return None if value is None else str(value)

    @property
    def erasure(self) -> str:
        return str(self.meta.get("erasure") or "delete_rows")

    @property
    def erasure_fields(self) -> tuple[str, ...]:
        return tuple(str(f) for f in self.meta.get("erasure_fields") or ())

    @property
    def free_text_erasure(self) -> str:
        return str(self.meta.get("free_text_erasure") or "null_fields")

    @property
    def parent(self) -> tuple[str, str] | None:
        value = self.meta.get("parent")
        if not value:
            return None
        return str(value["table"]), str(value["key"])

    @property
    def identifier_columns(self) -> tuple[tuple[str, str], ...]:
        """(column, identifier type) of the columns holding one fixed identifier type."""
        return tuple(
            (c.name, c.identifier_type) for c in self.columns if c.identifier_type is not None
        )

    @property
    def typed_columns(self) -> tuple[tuple[str, str], ...]:
        """(column, type column) of the columns whose identifier type a row's column names."""
        return tuple(
            (c.name, c.identifier_type_column)
            for c in self.columns
            if c.identifier_type_column is not None
        )

    @property
    def channel_columns(self) -> tuple[tuple[str, str], ...]:
        """(column, channel column) of the columns holding a channel's recipient."""
        return tuple(
            (c.name, c.identifier_type_by_channel)
            for c in self.columns
            if c.identifier_type_by_channel is not None
        )

    @property
    def free_text_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.free_text)

    @property
    def personal_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii in ("direct", "quasi"))

    @property
    def contract_columns(self) -> tuple[tuple[str, str], ...]:
        """(column, DuckDB type) in order, loader columns (``_loaded_at``, ``_batch_id``) excluded."""
        return tuple((c.name, c.data_type) for c in self.columns if not c.name.startswith("_"))


def _config_meta(node: Mapping[str, Any]) -> dict[str, Any]:
    meta = dict(node.get("meta") or {})
    meta.update((node.get("config") or {}).get("meta") or {})
    return meta


def _source_files(root: Path) -> Iterator[Path]:
    yield from sorted((root / "models").rglob("*.yml"))


def _as_on_duckdb(value: object) -> str:
    """A source's ``schema`` as dbt renders it on DuckDB: the yml names the Spark database
    with ``{{ ... if target.type == 'spark' else ... }}`` (dbt-spark has no catalogs)."""
    text = str(value)
    if "{{" not in text:
        return text
    from jinja2.sandbox import SandboxedEnvironment

    template = SandboxedEnvironment(autoescape=True).from_string(text)
    return str(template.render(target={"type": "duckdb"}))


@cache
def _load(root: Path) -> tuple[Table, ...]:
    tables: list[Table] = []
    for path in _source_files(root):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for source in document.get("sources") or ():
            if not _config_meta(source).get("landing"):
                continue
            schema = _as_on_duckdb(source.get("schema") or source["name"])
            for entry in source.get("tables") or ():
                columns = tuple(
                    Column(
                        name=str(c["name"]),
                        data_type=str(c.get("data_type") or ""),
                        meta=_config_meta(c),
                    )
                    for c in entry.get("columns") or ()
                )
                tables.append(
                    Table(
                        schema=schema,
                        name=str(entry["name"]),
                        columns=columns,
                        source=str(source["name"]),
                        meta=_config_meta(entry),
                        path=path,
                    )
                )
    return tuple(tables)


def landing_tables(root: Path | None = None) -> tuple[Table, ...]:
    """Every landing table the sources declare, in file order (read once per project)."""
    return _load((root or paths.project_dir()).resolve())


def table(qualified: str, root: Path | None = None) -> Table:
    for candidate in landing_tables(root):
        if candidate.qualified == qualified:
            return candidate
    raise CatalogError(f"no landing table {qualified} is declared in the sources' metadata")


def problems(root: Path | None = None) -> list[str]:
    """Where the metadata is incomplete: each line names the table or column and what is missing.

    Every landing table has a staging model of the staging recipe (which the row accounting
    and quarantine read); every landing column has a type and a ``pii`` level; a table with
    personal columns has an identifier column (or a parent) by which the erasure and the
    access export find whose rows they are; every table has a data category with a retention
    period in ``seeds/data_categories.csv``,
    retention rule and erasure method, and a ``record_time`` unless a named rule dates it.
    """
    project = (root or paths.project_dir()).resolve()
    with (project / "seeds" / "data_categories.csv").open(newline="", encoding="utf-8") as f:
        categories = {row["data_category"] for row in csv.DictReader(f)}
    models = {path.stem for path in (project / "models").rglob("*.sql")}
    found: list[str] = []
    for entry in landing_tables(project):
        where = entry.qualified
        if not entry.data_category:
            found.append(f"{where}: no data_category in its meta")
        elif entry.data_category not in categories:
            found.append(
                f"{where}: data_category {entry.data_category!r} is not in "
                "seeds/data_categories.csv (no retention period)"
            )
        if entry.staging_model not in models:
            found.append(
                f"{where}: no staging model {entry.staging_model}.sql (one line: "
                "stage_landing_table, macros/staging/stage_landing_table.sql)"
            )
        if entry.retention_rule not in RETENTION_RULES:
            found.append(
                f"{where}: retention_rule {entry.retention_rule!r} is not one of {RETENTION_RULES}"
            )
        if entry.retention_rule == "record_time" and "record_time" not in entry.meta:
            found.append(f"{where}: the record_time rule needs a record_time in its meta")
        if entry.retention_rule == "parent" and entry.parent is None:
            found.append(f"{where}: the parent rule needs a parent in its meta")
        for method in (entry.erasure, entry.free_text_erasure):
            if method not in ERASURE_METHODS:
                found.append(f"{where}: erasure method {method!r} is not one of {ERASURE_METHODS}")
        if entry.erasure != "delete_rows" and not entry.erasure_fields:
            found.append(f"{where}: erasure {entry.erasure} needs erasure_fields")
        names = {c.name for c in entry.columns}
        for name in entry.erasure_fields:
            if name not in names:
                found.append(f"{where}: erasure_fields names {name}, not a column")
        for name in ("_loaded_at", "_batch_id"):
            if name not in names:
                found.append(f"{where}: no loader column {name}")
        for column in entry.columns:
            at = f"{where}.{column.name}"
            if not column.data_type:
                found.append(f"{at}: no data_type (the landing contract)")
            if column.pii not in PII_LEVELS:
                found.append(f"{at}: pii is {column.pii!r}, not one of {PII_LEVELS}")
            if column.identifier_type and column.identifier_type not in IDENTIFIER_TYPES:
                found.append(
                    f"{at}: identifier_type {column.identifier_type!r} is not one of "
                    f"{IDENTIFIER_TYPES}"
                )
            for reference in (column.identifier_type_column, column.identifier_type_by_channel):
                if reference is not None and reference not in names:
                    found.append(f"{at}: names column {reference}, not a column of the table")
        has_identifier = entry.identifier_columns or entry.typed_columns or entry.channel_columns
        if not has_identifier and entry.parent is None and entry.personal_columns:
            found.append(
                f"{where}: personal columns but no identifier column or parent: "
                "no erasure or access export can find whose rows they are"
            )
    return found
