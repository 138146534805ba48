"""The ground-truth database: its schema (documented in the package docstring)."""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

TRUTH_TABLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "batches": (
        ("batch_id", "VARCHAR"),
        ("batch_no", "INTEGER"),
        ("seed", "BIGINT"),
        ("new_persons", "BIGINT"),
        ("dirty_rate", "DOUBLE"),
        ("reference_date", "DATE"),
        ("window_start", "TIMESTAMP"),
        ("window_end", "TIMESTAMP"),
        ("loaded_at", "TIMESTAMP"),
        ("next_person_no", "BIGINT"),
        ("next_customer_no", "BIGINT"),
        ("next_order_no", "BIGINT"),
        ("next_message_no", "BIGINT"),
        ("next_request_no", "BIGINT"),
        ("generator_version", "VARCHAR"),
    ),
    "persons": (
        ("person_id", "VARCHAR"),
        ("household_id", "VARCHAR"),
        ("locale", "VARCHAR"),
        ("gender", "VARCHAR"),
        ("first_name", "VARCHAR"),
        ("last_name", "VARCHAR"),
        ("middle_name", "VARCHAR"),
        ("birth_date", "DATE"),
        ("created_at", "TIMESTAMP"),
        ("_batch_id", "VARCHAR"),
    ),
    "profiles": (
        ("person_id", "VARCHAR"),
        ("customer_id", "VARCHAR"),
        ("alt_customer_id", "VARCHAR"),
        ("email", "VARCHAR"),
        ("phone", "VARCHAR"),
        ("push_token", "VARCHAR"),
        ("loyalty_card_number", "VARCHAR"),
        ("city", "VARCHAR"),
        ("postal_code", "VARCHAR"),
        ("address", "VARCHAR"),
        ("country_code", "VARCHAR"),
        ("_batch_id", "VARCHAR"),
    ),
    "identifiers": (
        ("person_id", "VARCHAR"),
        ("id_type", "VARCHAR"),
        ("value", "VARCHAR"),
        ("_batch_id", "VARCHAR"),
    ),
    "devices": (
        ("person_id", "VARCHAR"),
        ("anonymous_id", "VARCHAR"),
        ("device_type", "VARCHAR"),
        ("user_agent", "VARCHAR"),
        ("first_seen_at", "TIMESTAMP"),
        ("_batch_id", "VARCHAR"),
    ),
    "records": (
        ("schema_name", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("record_key", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("_batch_id", "VARCHAR"),
    ),
    "dirt": (
        ("schema_name", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("record_key", "VARCHAR"),
        ("column_name", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("_batch_id", "VARCHAR"),
    ),
    "shared_identifiers": (
        ("id_type", "VARCHAR"),
        ("value", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("_batch_id", "VARCHAR"),
    ),
    "withdrawals": (
        ("person_id", "VARCHAR"),
        ("purpose_code", "VARCHAR"),
        ("consent_event_id", "VARCHAR"),
        ("subject_id_type", "VARCHAR"),
        ("subject_id", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("captured_at", "TIMESTAMP"),
        ("_batch_id", "VARCHAR"),
    ),
    "requests": (
        ("person_id", "VARCHAR"),
        ("request_id", "VARCHAR"),
        ("request_type", "VARCHAR"),
        ("jurisdiction", "VARCHAR"),
        ("is_verified", "BOOLEAN"),
        ("subject_id_type", "VARCHAR"),
        ("received_at", "TIMESTAMP"),
        ("_batch_id", "VARCHAR"),
    ),
}

# Natural key of every raw table, as SQL over its columns: ``records.record_key``.
RECORD_KEYS: Final[dict[tuple[str, str], str]] = {
    ("crm", "customers"): "customer_id",
    ("web", "events"): "event_id",
    ("shop", "orders"): "order_id",
    ("shop", "order_items"): "order_id || '#' || line_number",
    ("messaging", "message_events"): "message_event_id",
    ("privacy", "consent_events"): "consent_event_id",
    ("privacy", "subject_requests"): "request_id",
}

_ARROW_TYPES: Final[dict[str, Any]] = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "DECIMAL(12,2)": pa.decimal128(12, 2),
}


def arrow_schema(columns: tuple[tuple[str, str], ...]) -> Any:
    """The pyarrow schema for ordered (column, DuckDB type) pairs."""
    return pa.schema([(name, _ARROW_TYPES[ctype]) for name, ctype in columns])


def create_truth_sql() -> list[str]:
    return [
        f"create table if not exists {name} ("
        + ", ".join(f"{col} {ctype}" for col, ctype in cols)
        + ")"
        for name, cols in TRUTH_TABLES.items()
    ]
