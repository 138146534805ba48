"""The master secret and the keys derived from it.

The master secret is read from the environment only, inside Python:

* ``CDP_MASTER_KEY``: the secret itself (at least 32 bytes, random), or
* ``CDP_MASTER_KEY_FILE``: the path of an owner-only file (mode 0600 or
  stricter) holding it; surrounding whitespace (the trailing newline) is
  ignored, so the same secret in either place yields the same keys.

``CDP_KEY_VERSION`` (default ``1``, 1-4 digits) names the key generation; it
is part of every derived key and printed in every pseudonym (``v1_...``), so a
rotation produces visibly different pseudonyms instead of silently mixing two
generations.

Every key in use is derived with HKDF-SHA256 (RFC 5869) under its own ``info``
label, so knowing one derived key reveals nothing about the master secret or
about any other derived key:

=====================  ==========================================  ===============
name                   HKDF info                                   used for
=====================  ==========================================  ===============
``identity``           ``cdp:pseudonym:identity:v<version>``       identifier pseudonyms (joins,
                                                                   identity resolution, vault map)
``person``             ``cdp:pseudonym:person:v<version>``         the profile's person key
``partner``            ``cdp:pseudonym:partner:v<version>``        outward disclosure to partners
vault encryption       ``cdp:vault:aes-256-gcm:v<version>``        AES-256-GCM of vault entries
vault nonce            ``cdp:vault:nonce:v<version>``              deterministic GCM nonces
log chain              ``cdp:vault:log-chain``                     the re-identification log's
                                                                   keyed hash chain
=====================  ==========================================  ===============

Pseudonyms of two domains are HMACs under unrelated keys: they cannot be joined
without the master secret.

Errors (:class:`KeyConfigError`) say what to set and never contain the secret
or any part of it. ``python -m cdp.keys check`` validates the configuration;
``python -m cdp.keys demo-key`` writes a random demo key to
``.secrets/master.key`` (git-ignored, owner-only) and prints its path.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import secrets
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cdp import paths

ENV_KEY: Final = "CDP_MASTER_KEY"
ENV_KEY_FILE: Final = "CDP_MASTER_KEY_FILE"
ENV_KEY_VERSION: Final = "CDP_KEY_VERSION"
DEFAULT_KEY_VERSION: Final = "1"
MIN_SECRET_BYTES: Final = 32
DERIVED_KEY_BYTES: Final = 32
MAX_KEY_FILE_BYTES: Final = 4096
#: Every entry point sets this umask before anything is created: owner-only files.
OWNER_ONLY_UMASK: Final = 0o077

#: The pseudonymisation domains; each has its own derived key.
DOMAINS: Final[tuple[str, ...]] = ("identity", "person", "partner")

# A fixed, public salt: HKDF's extract step only needs it to be independent of
# the secret (RFC 5869 s. 3.1); the per-use separation comes from ``info``.
_HKDF_SALT: Final = b"cdp/hkdf-salt/2024"

GENERATE_HINT: Final = (
    "export a random secret of at least 32 bytes, e.g. "
    "`export CDP_MASTER_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(48))')\"`, "
    "or set CDP_MASTER_KEY_FILE to an owner-only file (chmod 600) holding one; "
    "for a local demo only, `python -m cdp.keys demo-key` writes such a file"
)

# Words that mark a value copied from documentation or a template. A secret
# that is mostly made of them is refused, whatever its length.
_PLACEHOLDER_WORDS: Final[tuple[str, ...]] = (
    "yourkeyhere",
    "yoursecrethere",
    "changeme",
    "changethis",
    "replaceme",
    "placeholder",
    "masterkey",
    "cdpmasterkey",
    "password",
    "passwd",
    "secret",
    "example",
    "default",
    "insecure",
    "dummy",
    "sample",
    "qwerty",
    "letmein",
    "admin",
    "test",
    "demo",
    "todo",
    "fixme",
    "your",
    "here",
    "key",
    "foo",
    "bar",
    "baz",
    "xxx",
    "123",
    "abc",
)
# Fewer distinct characters than this is a placeholder. A random 32-hex-digit key
# (token_hex(16)) has fewer than 10 with probability 7.5e-5 and was then refused; fewer
# than 8 happens with probability below 4e-8 (C(16, 7) * (7/16)^32).
_MIN_DISTINCT_CHARS: Final = 8
_MIN_MEANINGFUL_CHARS: Final = 16


class KeyConfigError(RuntimeError):
    """The master key is missing or unusable. The message says what to set.

    It is a ``RuntimeError`` so that dbt-duckdb reports it as a connection
    error with this message. It never contains the secret or a part of it.
    """


@dataclass(frozen=True)
class MasterKey:
    """The validated master secret and the key version it serves.

    ``repr`` never shows the secret; the object refuses to be pickled.
    """

    secret: bytes = field(repr=False)
    version: str
    source: str

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a MasterKey cannot be pickled or copied out of the process")

    @property
    def version_label(self) -> str:
        """The version as printed in pseudonyms, e.g. ``'v1'``."""
        return f"v{self.version}"


# --------------------------------------------------------------------------- loading


def key_version(environ: Mapping[str, str] | None = None) -> str:
    """``CDP_KEY_VERSION`` validated: 1-4 digits, no leading zero (default ``'1'``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_KEY_VERSION)
    if raw is None or raw.strip() == "":
        return DEFAULT_KEY_VERSION
    value = raw.strip()
    if not re.fullmatch(r"[1-9][0-9]{0,3}", value):
        raise KeyConfigError(
            f"{ENV_KEY_VERSION} must be a key generation number of 1-4 digits without a "
            f"leading zero (e.g. {ENV_KEY_VERSION}=1, the default, or 2 after a rotation)"
        )
    return value


def _placeholder_reason(secret: bytes) -> str | None:
    """Why ``secret`` looks like a placeholder or low-entropy value, or None.

    The reason names a rule, never the content.
    """
    text = secret.decode("utf-8", errors="replace").lower()
    if len(set(secret)) == 1:
        return "it is one character repeated"
    distinct = len(set(secret))
    if distinct < _MIN_DISTINCT_CHARS:
        return f"it uses only {distinct} distinct characters"
    # A short unit repeated ("abcabcabc...", "0123456789012...").
    for period in range(1, min(16, len(secret) // 2) + 1):
        if all(secret[i] == secret[i % period] for i in range(len(secret))):
            return "it is a short pattern repeated"
    # Runs such as "abcdefgh..." or "0123456789...": nearly constant steps.
    steps = Counter(b - a for a, b in itertools.pairwise(secret))
    if steps and steps.most_common(1)[0][1] >= 0.6 * (len(secret) - 1):
        return "it is a simple sequence"
    # Mostly template words ("your-key-here", "changeme", "secret"...).
    rest = re.sub(r"[\s._-]", "", text)
    for word in _PLACEHOLDER_WORDS:
        rest = rest.replace(word, "")
    if len(rest) < _MIN_MEANINGFUL_CHARS:
        return "it is mostly words from templates and documentation"
    return None


def validate_secret(secret: bytes, source: str) -> None:
    """Refuse a secret that is too short or looks like a placeholder.

    ``source`` names where it came from (a variable or file path) for the message.
    """
    if len(secret) == 0:
        raise KeyConfigError(f"{source} is empty: {GENERATE_HINT}")
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigError(
            f"{source} holds {len(secret)} bytes; at least {MIN_SECRET_BYTES} bytes of random "
            f"data are needed: {GENERATE_HINT}"
        )
    reason = _placeholder_reason(secret)
    if reason is not None:
        raise KeyConfigError(
            f"{source} looks like a placeholder or low-entropy value ({reason}); replace it "
            f"with a random secret: {GENERATE_HINT}"
        )


def _read_key_file(path_text: str) -> bytes:
    path = Path(path_text).expanduser()
    where = f"{ENV_KEY_FILE} ({path})"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyConfigError(
            f"{where} does not exist: create it with a random secret and chmod 600, "
            f"or unset {ENV_KEY_FILE} and {GENERATE_HINT}"
        ) from None
    except OSError as exc:
        raise KeyConfigError(f"{where} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyConfigError(f"{where} is not a regular file")
    if os.name == "posix":
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyConfigError(
                f"{where} is accessible to group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); make it owner-only: chmod 600 '{path}'"
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise KeyConfigError(
                f"{where} belongs to another user; use a key file owned by the user running "
                f"the build (chmod 600)"
            )
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise KeyConfigError(
            f"{where} is larger than {MAX_KEY_FILE_BYTES} bytes: it should hold one secret"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"{where} cannot be read ({exc.strerror})") from None
    return data.strip()


def load_master_key(environ: Mapping[str, str] | None = None) -> MasterKey:
    """Read and validate the master secret and key version from the environment."""
    env = os.environ if environ is None else environ
    version = key_version(env)
    inline = env.get(ENV_KEY)
    file_name = env.get(ENV_KEY_FILE)
    if inline is not None and inline.strip() == "":
        inline = None
    if file_name is not None and file_name.strip() == "":
        file_name = None
    if inline is not None and file_name is not None:
        raise KeyConfigError(
            f"both {ENV_KEY} and {ENV_KEY_FILE} are set: set only one of them "
            f"(unset {ENV_KEY} to use the file, or unset {ENV_KEY_FILE})"
        )
    if inline is not None:
        secret = inline.strip().encode("utf-8")
        source = ENV_KEY
    elif file_name is not None:
        secret = _read_key_file(file_name)
        source = f"{ENV_KEY_FILE} ({Path(file_name).expanduser()})"
    else:
        raise KeyConfigError(f"{ENV_KEY} is not set: {GENERATE_HINT}")
    validate_secret(secret, source)
    return MasterKey(secret=secret, version=version, source=source)


# The key a `cdp` command took out of its environment, handed to the dbt plugin
# of the same process for the stages that need it (never written anywhere).
_HELD: list[MasterKey] = []


@contextlib.contextmanager
def holding(master: MasterKey) -> Iterator[MasterKey]:
    """Make ``master`` the key :func:`take_master_key` returns inside the block."""
    _HELD.append(master)
    try:
        yield master
    finally:
        _HELD.remove(master)


def take_master_key() -> MasterKey:
    """The master key for a privacy-stage component, taken out of the environment.

    Inside :func:`holding`, the held key. Otherwise the key is read as
    :func:`load_master_key` does and ``CDP_MASTER_KEY`` is then removed from
    ``os.environ``: nothing this process does afterwards (a dbt ``env_var()``,
    a child process, an error report) can read it from there.
    """
    if _HELD:
        return _HELD[-1]
    master = load_master_key()
    os.environ.pop(ENV_KEY, None)
    return master


#: Set when the dbt key guard (``dbt_cdp_keyguard``) took the key out of a dbt run's environment.
GUARD_REMOVED_KEY: list[bool] = []


def guard_dbt_environment() -> None:
    """Remove ``CDP_MASTER_KEY`` from ``os.environ`` and dbt's copy of it, before any Jinja.

    dbt's ``env_var()`` reads the invocation context's snapshot of the
    environment (``dbt_common.context``), taken when the command started: the
    key is removed from that snapshot too.
    """
    GUARD_REMOVED_KEY.clear()  # per dbt command: the guard runs as each one loads the project
    removed = os.environ.pop(ENV_KEY, None) is not None
    try:
        from dbt_common.context import get_invocation_context

        context = get_invocation_context()
        if ENV_KEY in context.env:
            removed = True
            # The snapshot is a private dict of dbt's; replace it without the key.
            context._env = {k: v for k, v in context.env.items() if k != ENV_KEY}
    except ImportError:
        pass
    if removed:
        GUARD_REMOVED_KEY.append(True)


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment for a child process: no key, no key file."""
    env = dict(os.environ if environ is None else environ)
    for name in (ENV_KEY, ENV_KEY_FILE):
        env.pop(name, None)
    return env


# --------------------------------------------------------------------------- derivation


def derive(master: MasterKey, info: bytes, length: int = DERIVED_KEY_BYTES) -> bytes:
    """HKDF-SHA256 of the master secret for one use, named by ``info``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_HKDF_SALT, info=info)
    return hkdf.derive(master.secret)


def pseudonym_info(domain: str, version: str) -> bytes:
    """The HKDF ``info`` of a pseudonymisation domain's key."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown pseudonymisation domain {domain!r}; known: {DOMAINS}")
    return f"cdp:pseudonym:{domain}:v{version}".encode("ascii")


def pseudonym_key(master: MasterKey, domain: str) -> bytes:
    """The HMAC key of a pseudonymisation domain (32 bytes)."""
    return derive(master, pseudonym_info(domain, master.version))


def vault_encryption_key(master: MasterKey, version: str | None = None) -> bytes:
    """The AES-256-GCM key of the vault (32 bytes) for a key version (default: current)."""
    return derive(master, f"cdp:vault:aes-256-gcm:v{version or master.version}".encode("ascii"))


def vault_log_key(master: MasterKey) -> bytes:
    """The HMAC key of the re-identification log's hash chain (32 bytes).

    Not versioned: the chain spans key versions, and a rotation keeps the master secret.
    """
    return derive(master, b"cdp:vault:log-chain")


def erasure_proof_key(master: MasterKey) -> bytes:
    """The HMAC key of erasure proofs (32 bytes): a domain no pseudonym or vault entry shares.

    Not versioned, like the log chain: a proof must still answer "was this identifier
    erased, and when" after a rotation (which keeps the master secret).
    """
    return derive(master, b"cdp:erasure:proof")


def vault_nonce_key(master: MasterKey, version: str | None = None) -> bytes:
    """The HMAC key that derives the vault's deterministic nonces (32 bytes)."""
    return derive(master, f"cdp:vault:nonce:v{version or master.version}".encode("ascii"))


# --------------------------------------------------------------------------- demo key


def create_demo_key(path: Path | None = None, *, quiet: bool = False) -> Path:
    """Create a random demo master key file (owner-only) unless one exists.

    The key is ``secrets.token_urlsafe(48)`` (64 characters, 384 bits) in
    ``.secrets/master.key`` (directory 0700, file 0600). An existing file is
    never overwritten. Returns the path; prints what it did (never the key).
    """
    target = paths.demo_key_file() if path is None else path
    folder = target.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(folder, 0o700)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not quiet:
            print(f"demo key: keeping the existing key file {target}", file=sys.stderr)
        return target
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    if os.name == "posix":
        os.chmod(target, 0o600)
    if not quiet:
        print(
            f"demo key: created a random master key in {target} (owner-only). "
            f"It is for the local demo only: use a managed secret for real data. "
            f"Use it with: export {ENV_KEY_FILE}={target}",
            file=sys.stderr,
        )
    return target


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="cdp keys",
        description="Check the configured master key, or create a local demo key.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "check",
        help=f"validate {ENV_KEY} / {ENV_KEY_FILE} / {ENV_KEY_VERSION}; print OK and the version",
    )
    demo = sub.add_parser(
        "demo-key",
        help="create .secrets/master.key (random, owner-only; never overwritten); print its path",
    )
    demo.add_argument("--path", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.command == "check":
        try:
            master = load_master_key()
        except KeyConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"OK: master key from {master.source}, key version {master.version_label}")
        return 0
    path = create_demo_key(args.path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
