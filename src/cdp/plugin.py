"""The dbt-duckdb plugin that gives SQL its privacy functions.

Loaded by ``profiles.yml`` (``plugins: - module: cdp.plugin, alias: cdp``).

Each profile target names its stage in the plugin config (``stage:
analytics | privacy | vault``; docs/decisions.md, "Two stages"):

* **analytics** (the default target ``local``): no key is read, no function is
  registered, nothing but the warehouse file is opened, and DuckDB starts
  locked down (``enable_external_access=false``, ``lock_configuration=true``):
  no SQL can read a file, attach a database, copy out or change a setting.
* **privacy** (target ``privacy``): the key is taken (``cdp.keys.take_master_key``:
  held by the ``cdp`` command, or read from ``CDP_MASTER_KEY_FILE``; a plain dbt
  run with ``CDP_MASTER_KEY`` in its environment is refused, since any model
  could read it with ``env_var()``); the raw zone and the vault are attached
  read-only, then DuckDB is locked down; the pseudonym and normaliser
  functions are registered.
* **vault** (target ``vault``): as privacy, with the vault attached read-write
  and the seal function registered: only the vault models run here.

``initialize`` (when dbt creates its DuckDB environment, *before*
``duckdb.connect`` creates or writes any file) validates the configuration
(key, vars, landing zone, key version), sets the owner-only umask and takes
the warehouse's build lock. The keys live only in Python closures of the
registered Arrow UDFs: no SQL text, macro definition (``duckdb_functions()``),
plan or profile holds key material or HMAC pads. The plugin refuses a config
entry that looks like a secret (``dbt debug`` prints the config), and a
connection on which DuckDB records statements or plans.

=============================================================  ==========  ==========
SQL function                                                   stages      kind
=============================================================  ==========  ==========
``cdp_pseudonym_identity(id_type VARCHAR, value VARCHAR)``     privacy,    Arrow UDF,
``cdp_pseudonym_person(id_type VARCHAR, value VARCHAR)``       vault       HMAC-SHA-256:
``cdp_pseudonym_partner(id_type VARCHAR, value VARCHAR)``                  ``'v<n>_' || hex``
``cdp_key_version()``                                          privacy,    temp macro
                                                               vault       (``'v<n>'``)
``cdp_normalise_email|phone|name(VARCHAR)``,                   privacy,    Arrow UDF
``cdp_normalise_phone_region``, ``cdp_clean_url``,             vault
``cdp_truncate_ip``, ``cdp_device_class``
``cdp_vault_seal(table, owner, kind, value) -> BLOB``          vault       Arrow UDF
=============================================================  ==========  ==========

Every function returns NULL for a NULL argument; the UDFs use DuckDB's
``SPECIAL`` NULL handling and compute each distinct value once per Arrow
batch. A view that calls them cannot be read from another connection:
materialise such models as tables. Python UDFs live in a database instance's
system catalog, so registration tolerates "already exists" and ends with a
self-check against the Python reference: functions built from another key
(a second key in the same process) stop the build, and any other failure
raises a generic message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import duckdb
import duckdb.func
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError

from cdp import contract, keys
from cdp.as_of import AsOfError, parse_as_of
from cdp.keys import DOMAINS, KeyConfigError, MasterKey, pseudonym_key
from cdp.normalise import (
    clean_url,
    device_class,
    normalise_email,
    normalise_name,
    normalise_phone,
    truncate_ip,
)
from cdp.pseudonym import arrow_pseudonym_function, key_version_macro_sql, pseudonym
from cdp.vault import SEALED_TABLES, VaultCipher, prepare_vault_file, restrict_file

PSEUDONYM_FUNCTIONS: Final[dict[str, str]] = {d: f"cdp_pseudonym_{d}" for d in DOMAINS}
KEY_VERSION_FUNCTION: Final = "cdp_key_version"
SEAL_FUNCTION: Final = "cdp_vault_seal"
#: The stages of a build (profiles.yml, selectors.yml, docs/decisions.md "Two stages").
STAGES: Final = ("analytics", "privacy", "vault")
KEYED_STAGES: Final = ("privacy", "vault")
PHONE_REGION_FUNCTION: Final = "cdp_normalise_phone_region"
NORMALISER_FUNCTIONS: Final[dict[str, Callable[[object], str | None]]] = {
    "cdp_normalise_email": normalise_email,
    "cdp_normalise_phone": normalise_phone,
    "cdp_normalise_name": normalise_name,
    "cdp_clean_url": clean_url,
    "cdp_truncate_ip": truncate_ip,
    "cdp_device_class": device_class,
}
_PROBE_TYPE: Final = "cdp_selfcheck"
_PROBE_VALUE: Final = "probe \u00e9\u0451 \U0001f511 " + "x" * 70  # non-ASCII, > 64 bytes
_SECRET_LOOKING_CONFIG: Final = re.compile(r"key|secret|password|passwd|token|credential", re.I)
_CDP_KEY_CONFIG: Final = re.compile(r"cdp|master", re.I)

_GENERIC_FAILURE: Final = (
    "cdp plugin: could not register the privacy functions (cdp_pseudonym_*, "
    "cdp_key_version, cdp_normalise_*, cdp_vault_seal) on a DuckDB connection, or they did "
    "not compute the expected values. Details are withheld: they could quote keyed values. "
    "Check that duckdb is the pinned version and that the connection is open."
)


class PluginRegistrationError(DbtRuntimeError):
    """Registering the functions failed; the message never contains SQL or key material."""


class _Material:
    """What the plugin keeps from the key: the keyed functions and their expected probes.

    The keys live only in these Python closures: no SQL text ever holds them.
    Never printed, never pickled.
    """

    __slots__ = ("cipher", "expected", "pseudonym_udfs", "version")

    def __init__(self, master: MasterKey, *, seal: bool) -> None:
        self.version = master.version
        domain_keys = {domain: pseudonym_key(master, domain) for domain in DOMAINS}
        self.pseudonym_udfs: tuple[tuple[str, Callable[..., Any]], ...] = tuple(
            (PSEUDONYM_FUNCTIONS[d], arrow_pseudonym_function(domain_keys[d], master.version))
            for d in DOMAINS
        )
        self.cipher = VaultCipher.from_master(master) if seal else None
        # Outputs of every function on a fixed probe: HMACs of a public string,
        # from which no key can be recovered.
        self.expected: tuple[object, ...] = (
            *(
                pseudonym(domain_keys[d], master.version, _PROBE_TYPE, _PROBE_VALUE)
                for d in DOMAINS
            ),
            master.version_label,
        )

    def __repr__(self) -> str:
        return "<cdp key material: redacted>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("cdp key material cannot be pickled or copied")


def _recording_settings(con: Any) -> list[str]:
    """Settings under which DuckDB would record statements or plans (and so the pads)."""
    try:
        rows = con.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('enable_profiling', 'enable_logging', 'log_query_path')"
        ).fetchall()
    except Exception:
        return []  # the registration that follows reports an unusable connection
    found = []
    for name, value in rows:
        text = "" if value is None else str(value).strip().lower()
        if name == "enable_logging" and text not in ("", "0", "false"):
            found.append(f"{name}={value}")
        elif name != "enable_logging" and text not in ("", "null", "none"):
            found.append(str(name))
    return sorted(found)


# --------------------------------------------------------------------------- preflight
# Everything here runs in ``initialize``, before dbt-duckdb opens or creates any
# database file: a configuration error stops the run with one message and
# nothing written.

#: Files the build creates (databases, their WAL, spill files, the lock) are
#: owner-only: they hold personal data or data derived from it.
OWNER_ONLY_UMASK: Final = keys.OWNER_ONLY_UMASK
LOCK_SUFFIX: Final = ".lock"

_VAR_INTEGER: Final = re.compile(r"[1-9][0-9]{0,5}")

# Held build locks of this process: resolved warehouse path -> open descriptor.
# A lock is kept until the process ends, so consecutive in-process dbt
# commands on one warehouse (dbtRunner) reuse it; another process is refused.
_BUILD_LOCKS: dict[str, int] = {}
_BUILD_LOCKS_GUARD: Final = threading.Lock()


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


def check_key_version(vault: Path, configured: str, *, full_refresh: bool) -> None:
    """Refuse to mix pseudonym generations (see :mod:`cdp.rotate`).

    The vault's ``key_version`` column says which key version built the
    warehouse. An older configured version is refused (it would bring back
    rotated-out pseudonyms); a newer one is a rotation and needs a full rebuild,
    or incremental models would hold two generations that never join.
    """
    if not vault.is_file():
        return
    try:
        con = duckdb.connect(str(vault), read_only=True)
    except duckdb.Error:
        return  # in use or unreadable: dbt's own attach reports it
    try:
        rows = con.execute(
            "SELECT DISTINCT key_version FROM main.vault_identifiers WHERE key_version IS NOT NULL"
        ).fetchall()
    except duckdb.Error:
        rows = []  # no vault table yet
    finally:
        con.close()
    built = sorted(
        {int(m.group(1)) for (v,) in rows if (m := re.fullmatch(r"v?([1-9][0-9]{0,3})", str(v)))}
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
            f"incremental models would mix two pseudonym generations. Run `python -m cdp.rotate "
            f"--to-version {configured}` (or dbt build --full-refresh); nothing was written"
        )


def lock_path(warehouse: Path) -> Path:
    """The build lock of a warehouse file: ``<warehouse>.lock`` next to it."""
    return warehouse.with_name(warehouse.name + LOCK_SUFFIX)


def acquire_build_lock(warehouse: Path) -> Path:
    """Take the warehouse's build lock (``flock``, exclusive, non-blocking) for this process.

    A second build on the same warehouse, in another process, fails at once
    with a message naming the holder. The lock is released when the process
    that holds it ends (also on SIGKILL: the kernel drops it), so a crashed
    build never leaves a stale lock. Creates the warehouse folder (0700) if needed.
    """
    folder = warehouse.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    path = lock_path(warehouse)
    key = str(path.resolve())
    with _BUILD_LOCKS_GUARD:
        if key in _BUILD_LOCKS:
            return path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 200, 0).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise ConfigurationError(
                f"cdp: another build is running on the warehouse {warehouse} "
                f"({holder or 'holder unknown'}); wait for it to finish and run again. "
                f"The lock ({path}) is released when that process ends"
            ) from None
        os.ftruncate(fd, 0)
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode("ascii"), 0)
        _BUILD_LOCKS[key] = fd
    return path


def release_build_locks() -> None:
    """Release every build lock this process holds (after its dbt commands are done)."""
    with _BUILD_LOCKS_GUARD:
        for fd in _BUILD_LOCKS.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock
        _BUILD_LOCKS.clear()


# --------------------------------------------------------------------------- Arrow UDFs


def _as_array(values: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def arrow_unary(fn: Callable[[object], str | None]) -> Callable[[Any], Any]:
    """Wrap a normaliser as an Arrow UDF that computes each distinct value once per batch."""

    def apply(values: Any) -> Any:
        array = _as_array(values)
        try:
            encoded = array.dictionary_encode()
        except (pa.ArrowException, AttributeError):
            return pa.array([fn(v) for v in array.to_pylist()], type=pa.string())
        mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], type=pa.string())
        return mapped.take(encoded.indices)

    return apply


def arrow_phone_region(values: Any, regions: Any) -> Any:
    """``cdp_normalise_phone_region(value, default_region)`` as an Arrow UDF."""
    vals = _as_array(values).to_pylist()
    regs = _as_array(regions).to_pylist()
    return pa.array(
        [None if r is None else normalise_phone(v, r) for v, r in zip(vals, regs, strict=True)],
        type=pa.string(),
    )


def arrow_seal(cipher: VaultCipher) -> Callable[[Any, Any, Any, Any], Any]:
    """``cdp_vault_seal(table, owner, kind, value)`` as an Arrow UDF.

    Each entry is bound to its row (table, owner pseudonym, id type or name
    part, key version); identifiers get a deterministic nonce, names a random
    one (:data:`cdp.vault.SEALED_TABLES`). A NULL argument gives NULL; a table
    the vault does not know fails the build.
    """

    def apply(tables: Any, owners: Any, kinds: Any, values: Any) -> Any:
        columns = [_as_array(c).to_pylist() for c in (tables, owners, kinds, values)]
        out: list[bytes | None] = []
        for table, owner, kind, value in zip(*columns, strict=True):
            if table is None or owner is None or kind is None or value is None:
                out.append(None)
                continue
            if table not in SEALED_TABLES:
                raise ValueError(f"cdp_vault_seal: {table!r} is not a vault table")
            deterministic = SEALED_TABLES[table][2]
            out.append(cipher.seal(table, owner, kind, value, deterministic=deterministic))
        return pa.array(out, type=pa.binary())

    return apply


# --------------------------------------------------------------------------- plugin


def _lock_down(con: Any) -> None:
    """Once the stage's files are attached: no file access from SQL, configuration frozen.

    ``read_text``, ``read_blob``, ``ATTACH``, ``COPY``, ``INSTALL``/``LOAD``
    from a file and every later ``SET``/``RESET`` fail, so no SQL run on the
    connection can reach the key file, another database file or a setting
    that would log statements. Settings are global: this runs once per
    database instance.
    """
    row = con.execute("SELECT current_setting('lock_configuration')").fetchone()
    if row and str(row[0]).lower() == "true":
        return
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


class Plugin(BasePlugin):
    """Registers the stage's ``cdp_*`` functions and locks DuckDB down; see the module docs."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # dbt-duckdb merges the profile's DuckDB ``settings`` into this dict; those
        # may hold other systems' credentials (s3_secret_access_key...), which are
        # not ours to judge. Entries of the plugin's own config that look like a
        # secret, and anything naming the cdp / master key anywhere, are refused.
        settings = getattr(getattr(self, "creds", None), "settings", None) or {}
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
        stage = plugin_config.get("stage")
        if stage not in STAGES:
            raise DbtRuntimeError(
                f"cdp plugin: the profile's plugin config must name the stage "
                f"(config: {{stage: analytics | privacy | vault}}); got {_shown(stage)}"
            )
        self.stage: str = str(stage)
        creds = getattr(self, "creds", None)
        attachments = list(getattr(creds, "attach", None) or [])
        if settings:
            raise DbtRuntimeError(
                f"cdp plugin: move {', '.join(sorted(map(str, settings)))} from the profile's "
                f"settings to config_options: the stages lock DuckDB's configuration, so a "
                f"per-cursor SET would fail"
            )
        master: MasterKey | None = None
        if self.stage in KEYED_STAGES:
            removed = bool(keys.GUARD_REMOVED_KEY) or keys.ENV_KEY in os.environ
            keys.GUARD_REMOVED_KEY.clear()
            if removed and not keys._HELD:
                os.environ.pop(keys.ENV_KEY, None)
                raise DbtRuntimeError(
                    f"cdp plugin: {keys.ENV_KEY} is set in the environment of a plain dbt run, "
                    f"where any model or `dbt show` could read it with env_var(). Run the "
                    f"{self.stage} stage with `cdp build` (it takes the key out of the "
                    f"environment before dbt starts), or give dbt the key as a file: "
                    f"{keys.ENV_KEY_FILE}=/path/to/owner-only/file"
                )
            python = _python_model_files()
            if python:
                raise DbtRuntimeError(
                    f"cdp plugin: the {self.stage} stage holds the master key, and the project "
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
        for attachment in attachments:
            alias = getattr(attachment, "alias", None)
            path = local_file(getattr(attachment, "path", None))
            if alias == "raw" and path is not None:
                check_landing_zone(path)
            if alias == "vault" and path is not None and master is not None:
                check_key_version(path, master.version, full_refresh=_dbt_full_refresh())
        # From here on the build writes: owner-only, and one build per warehouse.
        os.umask(OWNER_ONLY_UMASK)
        warehouse = local_file(getattr(creds, "path", None))
        if warehouse is not None:
            acquire_build_lock(warehouse)
        self._lock = threading.Lock()
        self._material: _Material | None = None
        self._udfs: tuple[tuple[str, Callable[..., Any], int, str, bool], ...] = ()
        if master is None:
            return
        self._material = _Material(master, seal=self.stage == "vault")
        del master
        udfs: list[tuple[str, Callable[..., Any], int, str, bool]] = [
            *((name, fn, 2, "VARCHAR", False) for name, fn in self._material.pseudonym_udfs),
            *(
                (name, arrow_unary(fn), 1, "VARCHAR", False)
                for name, fn in NORMALISER_FUNCTIONS.items()
            ),
            (PHONE_REGION_FUNCTION, arrow_phone_region, 2, "VARCHAR", False),
        ]
        if self._material.cipher is not None:
            # side effects: names get a random nonce per row, never one shared ciphertext
            udfs.append((SEAL_FUNCTION, arrow_seal(self._material.cipher), 4, "BLOB", True))
        self._udfs = tuple(udfs)

    def __repr__(self) -> str:
        version = self._material.version if self._material is not None else "-"
        return f"<cdp.plugin.Plugin name={self.name!r} stage={self.stage} key_version=v{version}>"

    # dbt-duckdb hooks ------------------------------------------------------------

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        """Before dbt connects: files owner-only; the analytics stage locked down at once."""
        warehouse = local_file(getattr(creds, "path", None))
        if warehouse is not None:
            restrict_file(warehouse)  # one created by an older build (0644) is tightened
        if self.stage == "analytics":
            # Nothing to attach: no file access and a frozen configuration from the start.
            config["enable_external_access"] = False
            config["lock_configuration"] = True
        for attachment in getattr(creds, "attach", None) or []:
            raw = local_file(getattr(attachment, "path", None))
            if getattr(attachment, "alias", None) == "raw" and raw is not None:
                restrict_file(raw)  # only a file of ours; a loader's own file is left alone
            alias = getattr(attachment, "alias", None)
            path = str(getattr(attachment, "path", "") or "")
            kind = getattr(attachment, "type", None)
            if alias != "vault" or kind not in (None, "duckdb"):
                continue
            if not path or path == ":memory:" or ":" in path.split("/", 1)[0]:
                continue  # in-memory, md:, s3://... are not local files
            try:
                prepare_vault_file(Path(path))
            except (OSError, duckdb.Error) as exc:
                raise DbtRuntimeError(
                    f"cdp plugin: could not prepare the vault file {path} owner-only: "
                    f"{type(exc).__name__}"
                ) from None

    def configure_connection(self, conn: Any) -> None:
        self._refuse_recording(conn)

    def configure_cursor(self, cursor: Any) -> None:
        # dbt-duckdb attaches the stage's files between configure_connection and
        # the first cursor: lock down here, then register the functions.
        self._refuse_recording(cursor)
        try:
            _lock_down(cursor)
        except Exception:
            raise PluginRegistrationError(
                "cdp plugin: could not lock DuckDB down (enable_external_access=false, "
                "lock_configuration=true) on the build's connection"
            ) from None
        self.register(cursor)

    # registration ----------------------------------------------------------------

    @staticmethod
    def _refuse_recording(con: Any) -> None:
        recording = _recording_settings(con)
        if recording:
            raise PluginRegistrationError(
                f"cdp plugin: DuckDB query logging or profiling is on for this connection "
                f"({', '.join(recording)}); the build refuses to run with statements or plans "
                f"recorded. Remove these from the profile's settings / config_options (or turn "
                f"them off) and run again"
            )

    def register(self, con: Any) -> None:
        """Register the stage's functions on ``con`` (idempotent), then self-check."""
        if self._material is None:
            return  # the analytics stage has no keyed function
        with self._lock:
            con.execute(key_version_macro_sql(KEY_VERSION_FUNCTION, self._material.version))
            if not self._create_udfs(con):
                raise PluginRegistrationError(_GENERIC_FAILURE)
            status = self._self_check(con)
        if status == "pseudonym_mismatch":
            raise PluginRegistrationError(
                "cdp plugin: the pseudonym functions on this DuckDB database were registered "
                "with a different key (another cdp plugin in this process?); use one master "
                "key per process"
            )
        if status != "ok":
            raise PluginRegistrationError(_GENERIC_FAILURE)

    def _create_one_udf(
        self, con: Any, name: str, fn: Callable[..., Any], arity: int, ret: str, effects: bool
    ) -> None:
        varchar = duckdb.sqltype("VARCHAR")
        con.create_function(
            name,
            fn,
            [varchar] * arity,
            duckdb.sqltype(ret),
            type=duckdb.func.PythonUDFType.ARROW,
            null_handling=duckdb.func.FunctionNullHandling.SPECIAL,
            side_effects=effects,
        )

    def _create_udfs(self, con: Any) -> bool:
        for name, fn, arity, ret, effects in self._udfs:
            try:
                self._create_one_udf(con, name, fn, arity, ret, effects)
            except Exception as exc:
                if "already" not in str(exc).lower():
                    return False
        return True

    def _self_check(self, con: Any) -> str:
        assert self._material is not None
        calls = [f"{PSEUDONYM_FUNCTIONS[d]}(?, ?)" for d in DOMAINS]
        calls += [f"{KEY_VERSION_FUNCTION}()"]
        calls += [f"{name}(NULL)" for name in NORMALISER_FUNCTIONS]
        calls += [f"{PSEUDONYM_FUNCTIONS[d]}(?, NULL)" for d in DOMAINS]
        params = [_PROBE_TYPE, _PROBE_VALUE] * len(DOMAINS) + [_PROBE_TYPE] * len(DOMAINS)
        try:
            rows = con.execute(f"SELECT {', '.join(calls)}", params).fetchall()
        except Exception:
            return "missing"
        if len(rows) != 1:
            return "missing"
        row = rows[0]  # fetchall: no result is left pending on the cursor (DuckDB 2.0)
        n = len(DOMAINS) + 1
        if any(v is not None for v in row[n:]):
            return "null_handling"
        if tuple(row[:n]) != self._material.expected:
            return "pseudonym_mismatch"
        return "ok"
