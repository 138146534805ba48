"""The key-leak scan shared by the tests: every spelling of the key material, searched for in
every byte of every file.

What counts as key material: the master secret, each domain's pseudonym key and its two HMAC
pads, and the vault's keys (encryption, nonce, log chain). Each is searched as raw bytes, lower
and upper hex, base64 and base64url (unpadded), a Java ``byte[]`` printed as a list of signed
numbers, and for a pad the DuckDB BLOB literal the old macro-based HMAC wrote. Spellings
shorter than 16 bytes are left out (they would match by chance). A byte search of a compressed
file finds nothing, so a scan is only as good as the files it reads: the Spark tests write the
event log and Parquet uncompressed, and assert that each kind of artifact was scanned.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path

from cdp import keys
from cdp.keys import MasterKey, pseudonym_key
from cdp.pseudonym import blob_literal, hmac_pads

#: Spellings shorter than this are not searched for (a chance match, not a leak).
MIN_MARKER = 16


def key_material(master: MasterKey) -> dict[str, bytes]:
    """Name -> the raw bytes of every secret derived from ``master`` (and ``master`` itself)."""
    named: dict[str, bytes] = {
        "master key": master.secret,
        "vault key": keys.vault_encryption_key(master),
        "vault nonce key": keys.vault_nonce_key(master),
        "vault log key": keys.vault_log_key(master),
    }
    for domain in keys.DOMAINS:
        derived = pseudonym_key(master, domain)
        named[f"{domain} key"] = derived
        ipad, opad = hmac_pads(derived)
        named[f"{domain} ipad"] = ipad
        named[f"{domain} opad"] = opad
    return named


def spellings(name: str, raw: bytes) -> dict[str, bytes]:
    """``name (spelling)`` -> the bytes of each way ``raw`` could be written down."""
    signed = [b - 256 if b > 127 else b for b in raw]
    out = {
        f"{name} (raw)": raw,
        f"{name} (hex)": raw.hex().encode(),
        f"{name} (HEX)": raw.hex().upper().encode(),
        f"{name} (base64)": base64.b64encode(raw).rstrip(b"="),
        f"{name} (base64url)": base64.urlsafe_b64encode(raw).rstrip(b"="),
        f"{name} (java bytes)": str(signed)[1:-1].encode(),
    }
    if len(raw) == 64:  # a pad: as the old DuckDB macro spelled it
        out[f"{name} (blob literal)"] = blob_literal(raw)[1:60].encode()
    return {label: data for label, data in out.items() if len(data) >= MIN_MARKER}


def key_markers(master: MasterKey, extra: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """Every spelling of every secret of :func:`key_material` (and of ``extra``)."""
    markers: dict[str, bytes] = {}
    for name, raw in {**key_material(master), **(extra or {})}.items():
        markers |= spellings(name, raw)
    return markers


def scan_files(
    files: Iterable[Path],
    markers: Mapping[str, bytes],
    *,
    root: Path | None = None,
    since: Mapping[Path, int] | None = None,
) -> list[str]:
    """``'<file>: <marker name>'`` for each marker found in each file.

    ``root``: files named relative to it; ``since``: only the bytes a file gained since its
    recorded size (the whole file if it shrank or is new).
    """
    hits: list[str] = []
    for path in files:
        data = path.read_bytes()
        start = (since or {}).get(path, 0)
        if start <= len(data):
            data = data[start:]
        shown = path.relative_to(root) if root is not None else path
        hits += [f"{shown}: {name}" for name, marker in markers.items() if marker in data]
    return hits


def files_under(root: Path, *, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every regular file under ``root`` (symlinks not followed), except under ``exclude``."""
    skipped = [Path(p) for p in exclude]
    found = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(p for p in found if not any(s == p or s in p.parents for s in skipped))
