"""The landing-zone contract (``shared/contracts/raw_landing.md``) as data.

The sources' metadata (cdp.sources) states the raw zone's schemas, tables, column
names and types (each landing column's ``data_type``); this module gives them as
the contract: the generator writes exactly this, and the contract check
compares a raw database with it.
"""

from __future__ import annotations

from typing import Final

from cdp import sources

LOADER_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("_loaded_at", "TIMESTAMP"),
    ("_batch_id", "VARCHAR"),
)


def _tables() -> dict[str, dict[str, tuple[tuple[str, str], ...]]]:
    tables: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}
    for entry in sources.landing_tables():
        tables.setdefault(entry.schema, {})[entry.name] = entry.contract_columns
    return tables


# schema -> table -> ordered (column, DuckDB type) pairs, loader columns excluded: the
# ``data_type`` of every landing column in the sources' metadata (cdp.sources).
TABLES: Final[dict[str, dict[str, tuple[tuple[str, str], ...]]]] = _tables()

PURPOSE_CODES: Final[tuple[str, ...]] = (
    "analytics",
    "personalisation",
    "email_marketing",
    "sms_marketing",
    "push_marketing",
    "partner_sharing",
)


def full_columns(schema: str, table: str) -> tuple[tuple[str, str], ...]:
    """All columns of a raw table, loader columns last."""
    return TABLES[schema][table] + LOADER_COLUMNS


def create_table_sql(schema: str, table: str) -> str:
    """DDL for one raw table (identifiers come from this module, never from input)."""
    cols = ",\n    ".join(
        f"{name} {ctype}" + (" NOT NULL" if name in ("_loaded_at", "_batch_id") else "")
        for name, ctype in full_columns(schema, table)
    )
    return f"create table if not exists {schema}.{table} (\n    {cols}\n)"


def create_all_sql() -> list[str]:
    """Schemas and tables of the whole raw zone, idempotent."""
    stmts = [f"create schema if not exists {schema}" for schema in TABLES]
    stmts += [create_table_sql(s, t) for s in TABLES for t in TABLES[s]]
    return stmts


def _normalise_type(type_name: str) -> str:
    return type_name.upper().replace(" ", "")


def check_database(con: object) -> list[str]:
    """Differences between a raw database (an open DuckDB connection) and the contract.

    Returns one human-readable line per difference; an empty list means the
    landing zone matches the contract exactly (schemas, tables, columns, order
    and types). Extra tables in the contract's schemas count as differences.
    """
    execute = getattr(con, "execute")  # noqa: B009 - duckdb connection, kept untyped here
    rows = execute(
        "select table_schema, table_name, column_name, data_type, ordinal_position "
        "from information_schema.columns "
        "where table_catalog = current_database() "
        "order by table_schema, table_name, ordinal_position"
    ).fetchall()
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type, _ in rows:
        if schema in TABLES:
            found.setdefault((schema, table), []).append((column, _normalise_type(data_type)))
    problems: list[str] = []
    for schema, tables in TABLES.items():
        for table in tables:
            expected = [(c, _normalise_type(t)) for c, t in full_columns(schema, table)]
            actual = found.pop((schema, table), None)
            if actual is None:
                problems.append(f"missing table {schema}.{table}")
            elif actual != expected:
                exp_names = [c for c, _ in expected]
                act_names = [c for c, _ in actual]
                if exp_names != act_names:
                    problems.append(
                        f"{schema}.{table}: columns {act_names} differ from the contract's {exp_names}"
                    )
                else:
                    for (col, exp_t), (_, act_t) in zip(expected, actual, strict=True):
                        if exp_t != act_t:
                            problems.append(
                                f"{schema}.{table}.{col}: type {act_t}, the contract says {exp_t}"
                            )
    problems += [f"unexpected table {s}.{t}" for s, t in sorted(found)]
    return problems
