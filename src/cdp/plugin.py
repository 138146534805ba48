"""The dbt-duckdb plugin that gives SQL its privacy functions.

Loaded by ``profiles.yml`` (``plugins: - module: cdp.plugin, alias: cdp``).

``initialize`` (when dbt creates its DuckDB environment, *before*
``duckdb.connect`` creates or writes any file) reads and validates the master
key from the environment (:mod:`cdp.keys`): a missing, short or placeholder key
stops the run with a dbt error that says what to set. It derives the domain
keys, builds the SQL of the pseudonym macros and the vault cipher, and keeps
only those, in an object that is never printed and refuses to be pickled. The
key is never part of the plugin's ``config`` (which ``dbt debug`` prints):
the plugin refuses a config entry that looks like a secret.

``configure_connection`` and ``configure_cursor`` register, on every DuckDB
connection and every cursor dbt uses (temporary macros are per connection):

=============================================================  =====================
SQL function                                                   implementation
=============================================================  =====================
``cdp_pseudonym_identity(id_type VARCHAR, value VARCHAR)``     temp macro, pure-SQL
``cdp_pseudonym_person(id_type VARCHAR, value VARCHAR)``       HMAC-SHA-256, returns
``cdp_pseudonym_partner(id_type VARCHAR, value VARCHAR)``      ``'v<n>_' || 64 hex``
``cdp_key_version()``                                          temp macro, ``'v<n>'``
``cdp_normalise_email(VARCHAR) -> VARCHAR``                    Arrow Python UDF
``cdp_normalise_phone(VARCHAR) -> VARCHAR`` (region RU)        Arrow Python UDF
``cdp_normalise_phone_region(value VARCHAR, region VARCHAR)``  Arrow Python UDF
``cdp_normalise_name(VARCHAR) -> VARCHAR``                     Arrow Python UDF
``cdp_clean_url(VARCHAR) -> VARCHAR``                          Arrow Python UDF
``cdp_truncate_ip(VARCHAR) -> VARCHAR``                        Arrow Python UDF
``cdp_device_class(VARCHAR) -> VARCHAR``                       Arrow Python UDF
``cdp_vault_seal(id_type VARCHAR, value VARCHAR) -> BLOB``     Arrow Python UDF
=============================================================  =====================

The pseudonym macros take VARCHAR arguments only (cast other types
explicitly). Every function returns NULL for a NULL argument. The Python
UDFs are deterministic and side-effect free, and declared with DuckDB's
``SPECIAL`` NULL handling: they receive NULLs and return NULL for them, and
they return NULL for an invalid value (``DEFAULT`` handling would reject a
NULL result for a non-NULL input). Each Arrow batch computes every distinct
value once. Macros are per connection, so a view that calls them cannot be
read from another connection: materialise such models as tables.

Python UDFs live in DuckDB's system catalog (shared by a database instance's
connections); temp macros do not. Registration therefore replaces the macros
on every cursor, tolerates "already exists" for the UDFs, and ends with a
self-check query comparing each function with the Python reference, so a
cursor without the functions, or with functions built from another key,
fails at once. A failure raises a generic message: the statements embed key
material and are never logged or put in an exception. For the same reason the
plugin refuses a connection on which DuckDB records statements or plans
(``enable_profiling``, ``enable_logging``, ``log_query_path``): a profile of a
query that calls a macro shows the constant-folded pads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import duckdb
import duckdb.func
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError

from cdp.keys import DOMAINS, KeyConfigError, MasterKey, load_master_key, pseudonym_key
from cdp.normalise import (
    clean_url,
    device_class,
    normalise_email,
    normalise_name,
    normalise_phone,
    truncate_ip,
)
from cdp.pseudonym import key_version_macro_sql, pseudonym, pseudonym_macro_sql
from cdp.vault import VaultCipher, prepare_vault_file

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
_SECRET_LOOKING_CONFIG: Final = re.compile(r"key|secret|password|passwd|token|credential", re.I)
_CDP_KEY_CONFIG: Final = re.compile(r"cdp|master", re.I)

_GENERIC_FAILURE: Final = (
    "cdp plugin: could not register the privacy functions (cdp_pseudonym_*, "
    "cdp_key_version, cdp_normalise_*, cdp_vault_seal) on a DuckDB connection. Details are "
    "withheld because the statements embed key material. Check that duckdb is the pinned "
    "version and that the connection is open and writable for temporary objects."
)


class PluginRegistrationError(DbtRuntimeError):
    """Registering the functions failed; the message never contains SQL or key material."""


class _Material:
    """What the plugin keeps from the key: macro SQL, the vault cipher, expected probes.

    Never printed, never pickled.
    """

    __slots__ = ("cipher", "expected", "macro_sql", "version")

    def __init__(self, master: MasterKey) -> None:
        self.version = master.version
        keys = {domain: pseudonym_key(master, domain) for domain in DOMAINS}
        self.macro_sql: tuple[str, ...] = (
            *(
                pseudonym_macro_sql(PSEUDONYM_FUNCTIONS[d], keys[d], master.version)
                for d in DOMAINS
            ),
            key_version_macro_sql(KEY_VERSION_FUNCTION, master.version),
        )
        self.cipher = VaultCipher.from_master(master)
        # Outputs of every function on a fixed probe: HMACs and a ciphertext of a
        # public string, from which no key can be recovered.
        self.expected: tuple[object, ...] = (
            *(pseudonym(keys[d], master.version, _PROBE_TYPE, _PROBE_VALUE) for d in DOMAINS),
            master.version_label,
            self.cipher.seal(_PROBE_TYPE, _PROBE_VALUE),
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


def arrow_seal(cipher: VaultCipher) -> Callable[[Any, Any], Any]:
    """``cdp_vault_seal`` as an Arrow UDF (NULL in either argument gives NULL)."""

    def apply(id_types: Any, values: Any) -> Any:
        types = _as_array(id_types).to_pylist()
        vals = _as_array(values).to_pylist()
        return pa.array(
            [
                None if t is None or v is None else cipher.seal(t, v)
                for t, v in zip(types, vals, strict=True)
            ],
            type=pa.binary(),
        )

    return apply


# --------------------------------------------------------------------------- plugin


class Plugin(BasePlugin):
    """Registers the ``cdp_*`` functions; see the module documentation."""

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
        try:
            master = load_master_key()
        except KeyConfigError as exc:
            raise DbtRuntimeError(f"cdp plugin: {exc}") from None
        self._material = _Material(master)
        del master
        self._lock = threading.Lock()
        self._udfs: tuple[tuple[str, Callable[..., Any], int, str], ...] = (
            *((name, arrow_unary(fn), 1, "VARCHAR") for name, fn in NORMALISER_FUNCTIONS.items()),
            (PHONE_REGION_FUNCTION, arrow_phone_region, 2, "VARCHAR"),
            (SEAL_FUNCTION, arrow_seal(self._material.cipher), 2, "BLOB"),
        )

    def __repr__(self) -> str:
        return f"<cdp.plugin.Plugin name={self.name!r} key_version=v{self._material.version}>"

    # dbt-duckdb hooks ------------------------------------------------------------

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        """Before dbt connects: create the vault file owner-only if dbt would attach it."""
        for attachment in getattr(creds, "attach", None) or []:
            alias = getattr(attachment, "alias", None)
            path = str(getattr(attachment, "path", "") or "")
            kind = getattr(attachment, "type", None)
            if (
                alias != "vault"
                or kind not in (None, "duckdb")
                or getattr(attachment, "read_only", False)
            ):
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
        self.register(conn)

    def configure_cursor(self, cursor: Any) -> None:
        self.register(cursor)

    # registration ----------------------------------------------------------------

    def register(self, con: Any) -> None:
        """Register every function on ``con`` (idempotent), then self-check."""
        recording = _recording_settings(con)
        if recording:
            raise PluginRegistrationError(
                f"cdp plugin: DuckDB query logging or profiling is on for this connection "
                f"({', '.join(recording)}); it would write the pseudonym functions' key "
                f"constants to its log or profile. Remove these from the profile's settings / "
                f"config_options (or turn them off) and run again"
            )
        with self._lock:
            if not self._create_macros(con):
                raise PluginRegistrationError(_GENERIC_FAILURE)
            if not self._create_udfs(con):
                raise PluginRegistrationError(_GENERIC_FAILURE)
            status = self._self_check(con)
            if status == "seal_mismatch" and self._replace_seal(con):
                status = self._self_check(con)
        if status == "seal_mismatch":
            raise PluginRegistrationError(
                f"cdp plugin: {SEAL_FUNCTION} on this DuckDB database was registered with a "
                f"different key (another cdp plugin in this process?); use one master key per "
                f"process"
            )
        if status != "ok":
            raise PluginRegistrationError(_GENERIC_FAILURE)

    def _create_macros(self, con: Any) -> bool:
        ok = True
        try:
            for sql in self._material.macro_sql:
                con.execute(sql)
        except Exception:  # the message may quote the statement: swallow it entirely
            ok = False
        return ok

    def _create_one_udf(
        self, con: Any, name: str, fn: Callable[..., Any], arity: int, ret: str
    ) -> None:
        varchar = duckdb.sqltype("VARCHAR")
        con.create_function(
            name,
            fn,
            [varchar] * arity,
            duckdb.sqltype(ret),
            type=duckdb.func.PythonUDFType.ARROW,
            null_handling=duckdb.func.FunctionNullHandling.SPECIAL,
            side_effects=False,
        )

    def _create_udfs(self, con: Any) -> bool:
        for name, fn, arity, ret in self._udfs:
            try:
                self._create_one_udf(con, name, fn, arity, ret)
            except Exception as exc:
                if "already" not in str(exc).lower():
                    return False
        return True

    def _replace_seal(self, con: Any) -> bool:
        name, fn, arity, ret = self._udfs[-1]
        try:
            con.remove_function(name)
            self._create_one_udf(con, name, fn, arity, ret)
        except Exception:
            return False
        return True

    def _self_check(self, con: Any) -> str:
        calls = [f"{PSEUDONYM_FUNCTIONS[d]}(?, ?)" for d in DOMAINS]
        calls += [f"{KEY_VERSION_FUNCTION}()", f"{SEAL_FUNCTION}(?, ?)"]
        calls += [f"{name}(NULL)" for name in NORMALISER_FUNCTIONS]
        calls += [f"{PSEUDONYM_FUNCTIONS[d]}(?, NULL)" for d in DOMAINS]
        params = [_PROBE_TYPE, _PROBE_VALUE] * (len(DOMAINS) + 1) + [_PROBE_TYPE] * len(DOMAINS)
        try:
            row = con.execute(f"SELECT {', '.join(calls)}", params).fetchone()
        except Exception:
            return "missing"
        if row is None:
            return "missing"
        n = len(DOMAINS) + 2
        got = (*row[: n - 1], bytes(row[n - 1]) if row[n - 1] is not None else None)
        if any(v is not None for v in row[n:]):
            return "null_handling"
        if got[:-1] != self._material.expected[:-1]:
            return "pseudonym_mismatch"
        if got[-1] != self._material.expected[-1]:
            return "seal_mismatch"
        return "ok"
