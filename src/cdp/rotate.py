"""Key rotation: a new key version re-pseudonymises everything, and the vault follows.

    python -m cdp.rotate --to-version 2 [--dry-run] [dbt arguments ...]

Every derived key (identity, person and partner pseudonyms, vault encryption
and nonce keys) is HKDF of the master secret *and the key version*
(:mod:`cdp.keys`), so a new ``CDP_KEY_VERSION`` (with the same or a new master
secret) gives unrelated keys. Rotation is therefore a rebuild:

1. read the version the warehouse and vault were built with (the vault's
   ``key_version`` column; the warehouse's pseudonyms carry ``v<n>_``);
2. refuse a target that is not newer (a rollback would resurrect old
   pseudonyms) and refuse to start while the configured key cannot open the
   current vault (rotating needs the current key: otherwise nobody could check
   that the old vault is the one being replaced);
3. re-key the purge's kept consent scopes (``audit.consent_scopes`` in the raw
   zone, :mod:`cdp.rotate_scopes`): each old pseudonym is mapped to its
   identifier (the vault) or raw key (the landing zone) and pseudonymised under
   the target version, in one raw-zone transaction; a row that cannot be mapped
   is deleted with a destruction record (docs/decisions.md, 74);
4. run ``dbt build --full-refresh`` with ``CDP_KEY_VERSION`` set to the target,
   so incremental models are rebuilt too and no old pseudonym survives in them;
5. verify: no string column of the warehouse or the vault, and none of the raw
   zone's ``audit.consent_scopes``, holds a pseudonym of any older version, and
   every vault entry carries the new version.

Old pseudonyms then stop resolving: the vault holds only entries under the
new version, so ``python -m cdp.vault lookup --pseudonym v1_...`` finds
nothing, and ``find`` gives the new pseudonym. The vault's
``reidentification_log`` (not a dbt model) is kept: it records who looked up
which old pseudonym, and those lookups stay explainable.

Not rewritten: the purge's ``audit.destruction_log`` in the raw zone keeps the
pseudonyms it recorded (a record of what was destroyed, under the key of its
day); anything exported before the rotation (partner files, published marts)
keeps its old pseudonyms and can no longer be joined to the warehouse, which is
the point of rotating.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import duckdb

from cdp import paths, stages
from cdp.keys import ENV_KEY_VERSION, OWNER_ONLY_UMASK, KeyConfigError, key_version, load_master_key
from cdp.pseudonym import TOKEN
from cdp.purge.scopes import SCOPE_TABLE
from cdp.rotate_scopes import ScopeRekey, ScopeRekeyError, rekey_scopes
from cdp.vault import IDENTIFIERS_TABLE, VaultCipher, VaultError, parse_version


class RotationError(RuntimeError):
    """Rotation cannot start or did not complete; the message says what to do."""


@dataclass
class RotationReport:
    """What a rotation found before and after."""

    from_versions: list[str]
    to_version: str
    old_pseudonyms_left: dict[str, int] = field(default_factory=dict)
    vault_versions: list[str] = field(default_factory=list)
    vault_rows: int = 0
    scopes: ScopeRekey = field(default_factory=ScopeRekey)

    @property
    def ok(self) -> bool:
        return not self.old_pseudonyms_left and self.vault_versions == [f"v{self.to_version}"]


def vault_versions(vault: Path) -> list[str]:
    """The key versions of the vault's identifier entries (``['v1']``), [] if none."""
    if not vault.is_file():
        return []
    con = duckdb.connect(str(vault), read_only=True)
    try:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            [IDENTIFIERS_TABLE],
        ).fetchall()
        if not found or not found[0][0]:
            return []
        rows = con.execute(
            f"SELECT DISTINCT key_version FROM main.{IDENTIFIERS_TABLE} ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    return [f"v{parse_version(str(r[0]))}" for r in rows if r[0] is not None]


def _check_current_key_opens(vault: Path, version: str) -> None:
    """The configured master key opens one current vault entry of ``version``."""
    master = load_master_key({**os.environ, ENV_KEY_VERSION: version})
    cipher = VaultCipher.from_master(master, version)
    con = duckdb.connect(str(vault), read_only=True)
    try:
        names = {
            str(r[0])
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND table_name = ?",
                [IDENTIFIERS_TABLE],
            ).fetchall()
        }
        sealed = next((n for n in ("sealed", "sealed_value") if n in names), None)
        if sealed is None:
            raise RotationError(
                f"main.{IDENTIFIERS_TABLE} in the vault {vault} has no sealed column; "
                f"nothing was changed"
            )
        rows = con.execute(
            f"SELECT pseudonym, id_type, {sealed} FROM main.{IDENTIFIERS_TABLE} "
            f"WHERE key_version IN (?, ?) AND {sealed} IS NOT NULL LIMIT 1",
            [f"v{version}", version],
        ).fetchall()
    finally:
        con.close()
    if not rows:
        raise RotationError(
            f"the vault {vault} has no readable v{version} entry to check the key against; "
            f"nothing was changed"
        )
    for owner, id_type, blob in rows:
        try:
            cipher.unseal(IDENTIFIERS_TABLE, str(owner), str(id_type), bytes(blob))
        except VaultError:
            raise RotationError(
                f"the configured master key does not open the vault's v{version} entries: "
                f"rotate with the key the vault was built with (set CDP_MASTER_KEY or "
                f"CDP_MASTER_KEY_FILE to it; a new master secret takes effect at the rebuild "
                f"only if you set it after checking); nothing was changed"
            ) from None


#: Audit records that keep the pseudonyms they were written with (see the module doc).
KEPT_RECORDS: Final = frozenset({"main.reidentification_log"})


#: The raw zone's tables that hold pseudonyms the warehouse joins on: rotation re-keys them.
#: (``audit.destruction_log`` keeps the pseudonyms it recorded, see the module doc.)
RAW_REKEYED: Final = frozenset({SCOPE_TABLE})


def old_pseudonyms(
    database: Path,
    current: str,
    *,
    exclude: frozenset[str] = KEPT_RECORDS,
    only: frozenset[str] | None = None,
) -> dict[str, int]:
    """``{schema.table.column: n}``: values holding a pseudonym of a version other than
    ``current``, in every VARCHAR column except the tables in ``exclude`` (of the tables in
    ``only``, when given)."""
    found: dict[str, int] = {}
    if not database.is_file():
        return found
    version = key_version({ENV_KEY_VERSION: current})  # digits only: safe in the SQL below
    con = duckdb.connect(str(database), read_only=True)
    try:
        columns = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND data_type = 'VARCHAR' "
            "AND NOT internal"
        ).fetchall()
        for schema, table, column in columns:
            if f"{schema}.{table}" in exclude:
                continue
            if only is not None and f"{schema}.{table}" not in only:
                continue
            # Names come from DuckDB's catalogue and are quoted; the pattern is bound.
            relation = ".".join(_quote(p) for p in (schema, table))
            values = _quote(column)
            row = con.execute(
                f"SELECT count(*) FROM {relation} WHERE len(list_filter("
                f"regexp_extract_all({values}, ?), lambda x: NOT starts_with(x, 'v{version}_'))) > 0",
                [TOKEN.pattern],
            ).fetchall()
            if row and row[0][0]:
                found[f"{schema}.{table}.{column}"] = int(row[0][0])
    finally:
        con.close()
    return found


def _quote(name: object) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def rotate(
    to_version: str,
    dbt_args: Sequence[str] = (),
    *,
    dry_run: bool = False,
    extra: Sequence[str] = (),
    rekey: bool = True,
) -> RotationReport:
    """Rebuild under key version ``to_version`` and verify; see the module documentation.

    ``rekey=False`` skips re-keying the consent scopes: the planted weak configuration of
    the attack test (pytests/test_rotation_scopes.py), not a product option.
    """
    target = key_version({ENV_KEY_VERSION: to_version})
    vault, warehouse, raw = paths.vault_db(), paths.warehouse_db(), paths.raw_db()
    current = vault_versions(vault)
    numbers = [int(v[1:]) for v in current]
    if numbers and max(numbers) >= int(target):
        raise RotationError(
            f"the vault is at key version {', '.join(current)}; rotate to a newer version "
            f"(e.g. --to-version {max(numbers) + 1}); going back would bring old pseudonyms back"
        )
    for version in current:
        _check_current_key_opens(vault, version[1:])
    report = RotationReport(from_versions=current, to_version=target)
    if rekey:
        # Before the rebuild (its staging reads the scopes) and while the old vault exists.
        # The key is the one just checked against the vault (same master secret, any version).
        master = load_master_key({**os.environ, ENV_KEY_VERSION: target})
        try:
            report.scopes = rekey_scopes(raw, vault, master, target, dry_run=dry_run)
        except ScopeRekeyError as exc:
            raise RotationError(f"re-keying the consent scopes: {exc}") from None
    if dry_run:
        return report
    saved = os.environ.get(ENV_KEY_VERSION)
    os.environ[ENV_KEY_VERSION] = target
    try:
        outcome = stages.run(["build", "--full-refresh", *dbt_args], extra=extra)
    finally:
        if saved is None:
            os.environ.pop(ENV_KEY_VERSION, None)
        else:
            os.environ[ENV_KEY_VERSION] = saved
    if not outcome.success:
        raise RotationError(
            f"dbt build --full-refresh under key version v{target} failed (see its output); "
            f"run the rotation again: it is a full rebuild and safe to repeat"
        )
    report.vault_versions = vault_versions(vault)
    report.old_pseudonyms_left = {
        **{f"warehouse:{k}": n for k, n in old_pseudonyms(warehouse, target).items()},
        **{f"vault:{k}": n for k, n in old_pseudonyms(vault, target).items()},
        **{f"raw:{k}": n for k, n in old_pseudonyms(raw, target, only=RAW_REKEYED).items()},
    }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="cdp rotate",
        description=(
            "Rotate the pseudonymisation key version: rebuild everything (dbt build "
            "--full-refresh) under the new CDP_KEY_VERSION, then verify that no pseudonym of an "
            "older version is left in the warehouse, the vault or the purge's kept consent scopes "
            "(which it re-keys first). Arguments it does not know "
            "go to dbt."
        ),
        epilog="exit status: 0 rotated and verified, 1 refused or failed, 2 usage error",
    )
    parser.add_argument("--to-version", required=True, help="the new key version, e.g. 2")
    parser.add_argument(
        "--dry-run", action="store_true", help="check only: current version, key, target"
    )
    args, dbt_args = parser.parse_known_args(argv)
    try:
        report = rotate(args.to_version, dbt_args, dry_run=args.dry_run)
    except (RotationError, KeyConfigError, VaultError) as exc:
        print(f"cdp rotate: error: {exc}", file=sys.stderr)
        return 1
    before = ", ".join(report.from_versions) or "none (no vault yet)"
    if args.dry_run:
        print(f"cdp rotate: vault at {before}; would rebuild under v{report.to_version}")
        print(f"cdp rotate: would re-key {report.scopes.summary()}")
        return 0
    print(f"cdp rotate: {report.scopes.summary()}")
    if not report.ok:
        print(
            f"cdp rotate: error: after the rebuild, vault versions {report.vault_versions}, "
            f"old pseudonyms left in {sorted(report.old_pseudonyms_left)}",
            file=sys.stderr,
        )
        return 1
    print(f"cdp rotate: {before} -> v{report.to_version}; no older pseudonym left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
