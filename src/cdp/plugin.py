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
``duckdb.connect`` creates or writes any file) runs the preflight
(:mod:`cdp.preflight`: profile, key, vars, landing zone, key version; a
config entry that looks like a secret is refused, since ``dbt debug`` prints
the config), sets the owner-only umask and takes the warehouse's build lock
(:mod:`cdp.build_lock`). This module is the rest: the registered functions.
The keys live only in Python closures of the registered Arrow UDFs: no SQL
text, macro definition (``duckdb_functions()``), plan or profile holds key
material or HMAC pads. The plugin refuses a connection on which DuckDB records
statements or plans.

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

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import duckdb
import duckdb.func
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError

from cdp import keys, preflight
from cdp.build_lock import acquire_build_lock
from cdp.keys import DOMAINS, MasterKey, pseudonym_key
from cdp.normalise import (
    clean_url,
    device_class,
    normalise_email,
    normalise_name,
    normalise_phone,
    truncate_ip,
)
from cdp.preflight import local_file
from cdp.pseudonym import arrow_pseudonym_function, key_version_macro_sql, pseudonym
from cdp.vault import SEALED_TABLES, VaultCipher, prepare_vault_file, restrict_file

PSEUDONYM_FUNCTIONS: Final[dict[str, str]] = {d: f"cdp_pseudonym_{d}" for d in DOMAINS}
KEY_VERSION_FUNCTION: Final = "cdp_key_version"
SEAL_FUNCTION: Final = "cdp_vault_seal"
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


_RECORDING_SETTINGS: Final = ("enable_profiling", "enable_logging", "log_query_path")


def _recording_settings(con: Any) -> list[str]:
    """Settings under which DuckDB would record statements or plans (and so the pads).

    Read with ``current_setting`` (a constant projection), not by scanning
    ``duckdb_settings()``: it runs on every cursor, and the scan cost ~4 ms each.
    """
    calls = ", ".join(f"current_setting('{name}')" for name in _RECORDING_SETTINGS)
    try:
        rows = con.execute(f"SELECT {calls}").fetchall()
    except Exception:
        return []  # the registration that follows reports an unusable connection
    found = []
    for name, value in zip(_RECORDING_SETTINGS, rows[0] if rows else (), strict=False):
        text = "" if value is None else str(value).strip().lower()
        if name == "enable_logging" and text not in ("", "0", "false"):
            found.append(f"{name}={value}")
        elif name != "enable_logging" and text not in ("", "null", "none"):
            found.append(str(name))
    return sorted(found)


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
        creds = getattr(self, "creds", None)
        # Every configuration check, before any file is written (cdp.preflight).
        self.stage, master = preflight.check_stage(plugin_config, creds)
        # From here on the build writes: owner-only, and one build per warehouse.
        os.umask(keys.OWNER_ONLY_UMASK)
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
        """Register the stage's functions on ``con`` (idempotent), then self-check.

        The UDFs live in the database instance's catalog, shared by all its cursors; the key
        version macro is a temp macro, one per cursor. So a cursor of a connection already
        registered (every cursor dbt opens after the first) costs the macro and one self-check
        query; the functions are created only when the self-check finds them missing.
        """
        if self._material is None:
            return  # the analytics stage has no keyed function
        with self._lock:
            con.execute(key_version_macro_sql(KEY_VERSION_FUNCTION, self._material.version))
            status = self._self_check(con)
            if status == "missing":
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
