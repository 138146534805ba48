"""The erased persons' vault entries: counted while planning, deleted in the vault's own
transaction before the raw zone is written; their pseudonym redacted from the
re-identification log (decision 49).
"""

from __future__ import annotations

from typing import Final

import duckdb

from cdp import vault as vault_tool
from cdp.purge.core import PurgeError, Purger, first_line

# Vault tables and the column holding the pseudonym their rows are keyed by.
VAULT_TABLES: Final[tuple[tuple[str, str, str], ...]] = (
    ("vault_identifiers", "pseudonym", "contact_identifiers"),
    ("vault_customer_names", "customer_key", "customer_master_data"),
)


def plan_vault_erasure(purger: Purger) -> None:
    """Count the erased persons' vault entries (deleted before the raw zone is written)."""
    if purger.vault_db is None or not purger.vault_db.exists():
        return
    erased = purger.con.sql(
        "select subject_key, person_key, request_id from purge_erased_keys"
    ).to_arrow_table()
    try:
        vault = duckdb.connect(str(purger.vault_db), read_only=True)
    except duckdb.Error as exc:
        raise PurgeError(
            f"cannot open the vault {purger.vault_db} ({first_line(exc)}); if a build is "
            "running, wait for it to finish"
        ) from None
    try:
        vault.register("purge_erased_keys_arrow", erased)
        present = {
            r[0]
            for r in vault.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        for table, column, category in VAULT_TABLES:
            if table not in present:
                continue
            for person_key, request_id, count in vault.execute(
                f"""
                select erased.person_key, erased.request_id, count(*)
                from main.{table} as entries
                inner join purge_erased_keys_arrow as erased
                    on entries.{column} = erased.subject_key
                group by all
                order by all
                """
            ).fetchall():
                purger.vault_plan.append(
                    (table, column, category, str(person_key), str(request_id), int(count))
                )
        # The re-identification log keeps its rows (who looked up what, when) but not the
        # erased person's pseudonym; rows written before commitments existed cannot be
        # redacted without breaking the chain (decision 49).
        redactable = vault.execute(
            "select count(*) from information_schema.columns where table_schema = 'main' "
            "and table_name = ? and column_name = 'pseudonym_commitment'",
            [vault_tool.LOG_TABLE],
        ).fetchall()[0][0]
        if redactable:
            for person_key, request_id, count in vault.execute(
                f"""
                select erased.person_key, erased.request_id, count(*)
                from main.{vault_tool.LOG_TABLE} as entries
                inner join purge_erased_keys_arrow as erased
                    on entries.pseudonym = erased.subject_key
                where entries.pseudonym_commitment is not null
                group by all
                order by all
                """
            ).fetchall():
                purger.vault_plan.append(
                    (
                        vault_tool.LOG_TABLE,
                        "pseudonym",
                        "contact_identifiers",
                        str(person_key),
                        str(request_id),
                        int(count),
                    )
                )
    finally:
        vault.close()


def execute_vault(purger: Purger) -> None:
    """Delete the erased persons' vault entries, in the vault's own transaction.

    Runs before the raw zone is written: the vault is derived from the raw zone by every
    build, so if the raw transaction then failed, the next build would re-seal what the raw
    zone still holds, and the purge can simply be run again.
    """
    if not purger.vault_plan or purger.vault_db is None:
        return
    erased = purger.con.sql("select subject_key from purge_erased_keys").to_arrow_table()
    try:
        vault = duckdb.connect(str(purger.vault_db))
    except duckdb.Error as exc:
        raise PurgeError(f"cannot open the vault {purger.vault_db} ({first_line(exc)})") from None
    try:
        vault.register("purge_erased_keys_arrow", erased)
        vault.execute("begin transaction")
        for table, column in sorted({(entry[0], entry[1]) for entry in purger.vault_plan}):
            if table == vault_tool.LOG_TABLE:
                subject_keys = [str(k) for k in erased.column("subject_key").to_pylist()]
                vault_tool.redact_log(vault, subject_keys)
                continue
            vault.execute(
                f"delete from main.{table} where {column} in "
                "(select subject_key from purge_erased_keys_arrow)"
            )
        vault.execute("commit")
        vault.execute("checkpoint")
    finally:
        vault.close()
