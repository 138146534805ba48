"""The checks a dbt stage runs before anything is written (the plugin's preflight).

:func:`check_stage` runs in the dbt plugin's ``initialize`` (:mod:`cdp.plugin`),
before dbt-duckdb opens or creates any database file: a configuration error
stops the run with one message and nothing written. In the order a user would
fix them:

1. the profile: no secret-looking plugin config, a named stage, no per-cursor
   ``settings`` (the stages lock DuckDB's configuration);
2. the key: a keyed stage (privacy, vault) takes it (``cdp build`` holds it in
   memory, or ``CDP_MASTER_KEY_FILE``), refuses ``CDP_MASTER_KEY`` in a plain
   dbt run's environment and Python models; the analytics stage holds no key
   and attaches nothing;
3. the vars that reach SQL or choose models (:func:`check_vars`; ``as_of``
   by :mod:`cdp.as_of`);
4. the files: the landing zone matches the contract
   (:func:`check_landing_zone`, also ``cdp check``), the vault's key version
   matches the configured one (:func:`check_key_version`), and so do the purge's
   kept consent scopes in the raw zone (:func:`check_scope_key_version`).

The build lock is taken after these pass (:mod:`cdp.build_lock`). No message
here holds a key, a var's whole value or a row of data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import duckdb
from dbt_common.exceptions import DbtRuntimeError

from cdp import contract, keys
from cdp.as_of import AsOfError, parse_as_of
from cdp.keys import KeyConfigError, MasterKey

#: The stages of a build (profiles.yml, selectors.yml, docs/decisions.md "Two stages").
STAGES: Final = ("analytics", "privacy", "vault")
KEYED_STAGES: Final = ("privacy", "vault")
_SECRET_LOOKING_CONFIG: Final = re.compile(r"key|secret|password|passwd|token|credential", re.I)
_CDP_KEY_CONFIG: Final = re.compile(r"cdp|master", re.I)
_VAR_INTEGER: Final = re.compile(r"[1-9][0-9]{0,5}")


class ConfigurationError(DbtRuntimeError):
    """A configuration problem found before anything is written; one clear message."""


def _shown(value: object) -> str:
    text = str(value)
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigurationError(
            f"cdp: the var {name} must be one of {', '.join(choices)}; got {_shown(value)}"
        )


def check_vars(cli_vars: Mapping[str, Any]) -> None:
    """Validate the vars given on the command line that reach SQL or choose models.

    Each has one clear message; a var this function does not know is left to the
    models that read it.
    """
    if cli_vars.get("as_of") is not None:
        try:
            parse_as_of(cli_vars["as_of"])
        except AsOfError as exc:
            raise ConfigurationError(f"cdp: {exc}") from None
    for name in (
        "identity_max_customers_per_identifier",
        "identity_max_identifiers_per_identifier",
    ):
        if name in cli_vars:
            value = cli_vars[name]
            if isinstance(value, bool) or not _VAR_INTEGER.fullmatch(str(value).strip()):
                raise ConfigurationError(
                    f"cdp: the var {name} must be a positive whole number (e.g. 3); "
                    f"got {_shown(value)}"
                )
    if "consent_identity_map" in cli_vars:
        _check_choice(
            "consent_identity_map", cli_vars["consent_identity_map"], ("identity", "fallback")
        )
    if "identity_portable_components" in cli_vars:
        value = cli_vars["identity_portable_components"]
        if not isinstance(value, bool):
            raise ConfigurationError(
                f"cdp: the var identity_portable_components must be true or false; "
                f"got {_shown(value)}"
            )
    region = cli_vars.get("default_phone_region")
    if region is not None and not re.fullmatch(r"[A-Za-z]{2}", str(region)):
        raise ConfigurationError(
            f"cdp: the var default_phone_region must be an ISO 3166-1 alpha-2 code (e.g. RU); "
            f"got {_shown(region)}"
        )


def _dbt_cli_vars() -> Mapping[str, Any]:
    """The vars of the running dbt command (``--vars``), or none outside dbt."""
    try:
        from dbt.flags import get_flags

        found = getattr(get_flags(), "VARS", None)  # type: ignore[no-untyped-call]
    except Exception:
        return {}
    return found if isinstance(found, Mapping) else {}


def local_file(path: object) -> Path | None:
    """``path`` as a local file path, or None for in-memory and remote databases."""
    text = str(path or "")
    if not text or text == ":memory:" or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text):
        return None
    return Path(text).expanduser()


def check_landing_zone(raw: Path) -> None:
    """The raw zone exists and matches the landing-zone contract, or a ConfigurationError."""
    if not raw.is_file():
        raise ConfigurationError(
            f"cdp: no landing zone at {raw}: set CDP_RAW_DB to the raw DuckDB file your "
            f"loaders write (or run `make demo` to generate one); nothing was written"
        )
    try:
        con = duckdb.connect(str(raw), read_only=True)
    except duckdb.Error as exc:
        reason = "it is in use by a writer" if "lock" in str(exc).lower() else "not a DuckDB file"
        raise ConfigurationError(
            f"cdp: cannot open the landing zone {raw} read-only ({reason}); nothing was written"
        ) from None
    try:
        problems = contract.check_database(con)
    finally:
        con.close()
    if problems:
        listed = "; ".join(problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ConfigurationError(
            f"cdp: the landing zone {raw} does not match the contract "
            f"(shared/contracts/raw_landing.md): {listed}{more}; nothing was written"
        )


def _python_model_files() -> list[str]:
    """Python model files of the dbt project being run (``models/**/*.py``)."""
    try:
        from dbt.flags import get_flags

        project = getattr(get_flags(), "PROJECT_DIR", None)  # type: ignore[no-untyped-call]
    except Exception:
        project = None
    root = Path(str(project)) if project else Path.cwd()
    models = root / "models"
    if not models.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in models.rglob("*.py"))


def _dbt_full_refresh() -> bool:
    try:
        from dbt.flags import get_flags

        return bool(getattr(get_flags(), "FULL_REFRESH", False))  # type: ignore[no-untyped-call]
    except Exception:
        return False


def _key_versions(database: Path, sql: str) -> set[int]:
    """The key versions (``v<n>_`` prefixes) ``sql`` returns from ``database``, read-only; an
    empty set when the file or the table is not there (dbt's own attach reports the file)."""
    if not database.is_file():
        return set()
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:
        return set()
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        rows = []  # no such table yet: no purge ran, or no vault built
    finally:
        con.close()
    return {int(m.group(1)) for (v,) in rows if (m := re.fullmatch(r"v?([1-9][0-9]{0,3})", str(v)))}


def check_key_version(vault: Path, configured: str, *, full_refresh: bool) -> None:
    """Refuse to mix pseudonym generations (see :mod:`cdp.rotate`).

    The vault's ``key_version`` column says which key version built the
    warehouse. An older configured version is refused (it would bring back
    rotated-out pseudonyms); a newer one is a rotation and needs a full rebuild,
    or incremental models would hold two generations that never join.
    """
    built = sorted(
        _key_versions(
            vault,
            "SELECT DISTINCT key_version FROM main.vault_identifiers WHERE key_version IS NOT NULL",
        )
    )
    if not built or built == [int(configured)]:
        return
    if max(built) > int(configured):
        raise ConfigurationError(
            f"cdp: the vault {vault} was built with key version v{max(built)} but "
            f"CDP_KEY_VERSION is {configured}: set CDP_KEY_VERSION={max(built)} (an older key "
            f"version would bring rotated-out pseudonyms back); nothing was written"
        )
    if not full_refresh:
        raise ConfigurationError(
            f"cdp: CDP_KEY_VERSION={configured} but the warehouse and vault were built with "
            f"{', '.join(f'v{b}' for b in built)}: a new key version needs a full rebuild, or "
            f"incremental models would mix two pseudonym generations. Run `cdp rotate "
            f"--to-version {configured}` (or dbt build --full-refresh); nothing was written"
        )


def check_scope_key_version(raw: Path, vault: Path, configured: str) -> None:
    """Refuse a build whose kept consent scopes are under another key version (decision 84).

    The purge's kept scopes (``audit.consent_scopes`` in the raw zone) hold identity-domain
    pseudonyms, which carry the key version. Staging reads them back; under another version
    they match no identifier, and a split person's withdrawal silently stops reaching the
    other part (consent given back, decisions 71 and 74). Two ways there:

    * a ``cdp rotate`` re-keyed the scopes, then its rebuild failed: the scopes are at the new
      version, the warehouse and vault still at the old one, and a plain build would run;
    * a new ``CDP_KEY_VERSION`` built with ``dbt build --full-refresh`` instead of
      ``cdp rotate``: the scopes stay at the old version.

    Runs after :func:`check_key_version`, which already refuses a version older than the
    vault's (a finished rotation).
    """
    from cdp.pseudonym import TOKEN
    from cdp.purge.scopes import SCOPE_TABLE  # the purge package is not needed otherwise

    scopes = _key_versions(
        raw,
        f"SELECT DISTINCT unnest(regexp_extract_all(coalesce(member_key, '') || ' ' || "
        f"coalesce(event_id, ''), '{TOKEN.pattern}', 1)) FROM {SCOPE_TABLE}",
    )
    version = int(configured)
    if not scopes or scopes == {version}:
        return
    listed = ", ".join(f"v{v}" for v in sorted(scopes))
    if max(scopes) > version:
        built = _key_versions(vault, "SELECT DISTINCT key_version FROM main.vault_identifiers")
        at = ", ".join(f"v{v}" for v in sorted(built)) or "none"
        raise ConfigurationError(
            f"cdp: the purge's kept consent scopes in {raw} ({SCOPE_TABLE}) are at key version "
            f"{listed}, the vault at {at} and CDP_KEY_VERSION is {configured}: a `cdp rotate "
            f"--to-version {max(scopes)}` re-keyed the scopes and did not finish its rebuild. "
            f"Run it again before any other build (it is safe to repeat); a build under "
            f"v{configured} would give withdrawn consent back; nothing was written"
        )
    raise ConfigurationError(
        f"cdp: the purge's kept consent scopes in {raw} ({SCOPE_TABLE}) are at key version "
        f"{listed} but CDP_KEY_VERSION is {configured}: under v{configured} they would match "
        f"no identifier and give withdrawn consent back. Run `cdp rotate --to-version "
        f"{configured}`, which re-keys them before its rebuild; nothing was written"
    )


def check_stage(plugin_config: Mapping[str, Any], creds: Any) -> tuple[str, MasterKey | None]:
    """The plugin's stage and, for a keyed stage, the master key; or one clear error.

    ``creds`` are dbt-duckdb's credentials (``path``, ``attach``, ``settings``),
    or None. Raises ``DbtRuntimeError`` (a :class:`ConfigurationError` for the
    vars and files) before any file is opened for writing.
    """
    # dbt-duckdb merges the profile's DuckDB ``settings`` into this dict; those
    # may hold other systems' credentials (s3_secret_access_key...), which are
    # not ours to judge. Entries of the plugin's own config that look like a
    # secret, and anything naming the cdp / master key anywhere, are refused.
    settings = getattr(creds, "settings", None) or {}
    suspicious = sorted(
        str(k)
        for k in plugin_config
        if _CDP_KEY_CONFIG.search(str(k))
        or (k not in settings and _SECRET_LOOKING_CONFIG.search(str(k)))
    )
    if suspicious:
        raise DbtRuntimeError(
            f"cdp plugin: remove {', '.join(suspicious)} from the profile's plugin config "
            f"or settings: the master key must never be in profiles.yml (dbt debug prints "
            f"it); set CDP_MASTER_KEY or CDP_MASTER_KEY_FILE in the environment instead"
        )
    named = plugin_config.get("stage")
    if named not in STAGES:
        raise DbtRuntimeError(
            f"cdp plugin: the profile's plugin config must name the stage "
            f"(config: {{stage: analytics | privacy | vault}}); got {_shown(named)}"
        )
    stage = str(named)
    attachments = list(getattr(creds, "attach", None) or [])
    if settings:
        raise DbtRuntimeError(
            f"cdp plugin: move {', '.join(sorted(map(str, settings)))} from the profile's "
            f"settings to config_options: the stages lock DuckDB's configuration, so a "
            f"per-cursor SET would fail"
        )
    master: MasterKey | None = None
    if stage in KEYED_STAGES:
        removed = bool(keys.GUARD_REMOVED_KEY) or keys.ENV_KEY in os.environ
        keys.GUARD_REMOVED_KEY.clear()
        if removed and not keys._HELD:
            os.environ.pop(keys.ENV_KEY, None)
            raise DbtRuntimeError(
                f"cdp plugin: {keys.ENV_KEY} is set in the environment of a plain dbt run, "
                f"where any model or `dbt show` could read it with env_var(). Run the "
                f"{stage} stage with `cdp build` (it takes the key out of the "
                f"environment before dbt starts), or give dbt the key as a file: "
                f"{keys.ENV_KEY_FILE}=/path/to/owner-only/file"
            )
        python = _python_model_files()
        if python:
            raise DbtRuntimeError(
                f"cdp plugin: the {stage} stage holds the master key, and the project "
                f"has Python models ({', '.join(python[:5])}), which would run arbitrary "
                f"Python beside it; write them as SQL models"
            )
        try:
            master = keys.take_master_key()
        except KeyConfigError as exc:
            raise DbtRuntimeError(f"cdp plugin: {exc}") from None
    else:
        # The analytics stage holds no key and reaches no other zone.
        os.environ.pop(keys.ENV_KEY, None)
        if attachments:
            names = ", ".join(str(getattr(a, "alias", "?")) for a in attachments)
            raise DbtRuntimeError(
                f"cdp plugin: the analytics stage attaches no other database (found: "
                f"{names}); the raw zone and the vault belong to the privacy and vault "
                f"stages (profiles.yml targets privacy, vault)"
            )
    # Configuration checks, in the order a user would fix them, before any file exists.
    check_vars(_dbt_cli_vars())
    files: dict[str, Path] = {}
    for attachment in attachments:
        alias = getattr(attachment, "alias", None)
        path = local_file(getattr(attachment, "path", None))
        if path is not None and alias in ("raw", "vault"):
            files[str(alias)] = path
        if alias == "raw" and path is not None:
            check_landing_zone(path)
        if alias == "vault" and path is not None and master is not None:
            check_key_version(path, master.version, full_refresh=_dbt_full_refresh())
    if master is not None and "raw" in files and "vault" in files:
        check_scope_key_version(files["raw"], files["vault"], master.version)
    return stage, master
