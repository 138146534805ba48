"""Vectorised building blocks: numpy for numbers, pyarrow for strings.

Nothing here loops over rows in Python. Arrays of strings are pyarrow arrays
(typed ``Arr``: pyarrow ships no type information); numbers, masks and
indices are numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Arr: TypeAlias = Any  # a pyarrow Array (untyped library)
I64: TypeAlias = npt.NDArray[np.int64]
U64: TypeAlias = npt.NDArray[np.uint64]
F64: TypeAlias = npt.NDArray[np.float64]
Bool: TypeAlias = npt.NDArray[np.bool_]
Rng: TypeAlias = np.random.Generator

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_VARIANT = np.frombuffer(b"89ab", dtype=np.uint8)


def strings(values: Sequence[str | None]) -> Arr:
    """A pyarrow string array from Python values (pools only, never per row)."""
    return pa.array(list(values), type=pa.string())


def nulls(n: int) -> Arr:
    return pa.nulls(n, type=pa.string())


def const(value: str, n: int) -> Arr:
    """``n`` copies of one string, dictionary-free but cheap."""
    return pa.array([value], type=pa.string()).take(np.zeros(n, dtype=np.int64))


def take(pool: Arr, idx: npt.NDArray[Any]) -> Arr:
    """``pool[idx]`` for a pyarrow pool and numpy indices."""
    return pool.take(pa.array(np.asarray(idx, dtype=np.int64)))


def concat(*parts: Arr | str) -> Arr:
    """Element-wise string concatenation; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def concat_skip_nulls(*parts: Arr | str) -> Arr:
    """Element-wise concatenation treating nulls as empty strings."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")


def int_str(values: npt.NDArray[Any]) -> Arr:
    return pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())


def padded(values: npt.NDArray[Any], width: int) -> Arr:
    """Zero-padded decimal strings."""
    return pc.utf8_lpad(int_str(values), width=width, padding="0")


def where(mask: Bool, a: Arr | str | None, b: Arr | str | None) -> Arr:
    """``a`` where ``mask`` else ``b`` (arrays or scalars)."""
    scal_a = pa.scalar(a, type=pa.string()) if a is None or isinstance(a, str) else a
    scal_b = pa.scalar(b, type=pa.string()) if b is None or isinstance(b, str) else b
    return pc.if_else(pa.array(mask, type=pa.bool_()), scal_a, scal_b)


def null_where(arr: Arr, mask: Bool) -> Arr:
    """``arr`` with the masked positions set to null."""
    if not mask.any():
        return arr
    return pc.if_else(pa.array(mask, type=pa.bool_()), pa.scalar(None, type=arr.type), arr)


def put(arr: Arr, idx: npt.NDArray[Any], values: Arr) -> Arr:
    """A copy of ``arr`` with positions ``idx`` (unique) replaced by ``values``."""
    if len(idx) == 0:
        return arr
    mask = np.zeros(len(arr), dtype=bool)
    mask[idx] = True
    if len(idx) > 1 and not bool(np.all(idx[1:] > idx[:-1])):
        values = values.take(pa.array(np.argsort(idx, kind="stable")))
    return pc.replace_with_mask(arr, pa.array(mask), values)


def choose(selector: npt.NDArray[Any], *options: Arr) -> Arr:
    """Row-wise pick ``options[selector[i]][i]``."""
    return pc.choose(pa.array(np.asarray(selector, dtype=np.int8)), *options)


def _fixed_width(buf: npt.NDArray[np.uint8]) -> Arr:
    n, width = buf.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(buf)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _random_hex(rng: Rng, n: int, nchars: int) -> npt.NDArray[np.uint8]:
    """``(n, nchars)`` ASCII hex digits from the seeded generator."""
    nbytes = (nchars + 1) // 2
    raw = np.frombuffer(rng.bytes(n * nbytes), dtype=np.uint8).reshape(n, nbytes)
    out = np.empty((n, nbytes * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out[:, :nchars]


def hex_strings(rng: Rng, n: int, nchars: int) -> Arr:
    """Random lower-case hex strings of ``nchars`` characters."""
    return _fixed_width(_random_hex(rng, n, nchars))


def uuid4_strings(rng: Rng, n: int) -> Arr:
    """Random RFC 4122 version-4 UUIDs as text, from the seeded generator."""
    h = _random_hex(rng, n, 32)
    h[:, 12] = ord("4")
    h[:, 16] = _VARIANT[h[:, 16] & 3]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8] = h[:, 0:8]
    out[:, 9:13] = h[:, 8:12]
    out[:, 14:18] = h[:, 12:16]
    out[:, 19:23] = h[:, 16:20]
    out[:, 24:36] = h[:, 20:32]
    return _fixed_width(out)


def timestamps(us: npt.NDArray[Any], null: Bool | None = None) -> Arr:
    """TIMESTAMP (microseconds, no time zone) from epoch microseconds."""
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.timestamp("us"), mask=null)


def dates(days: npt.NDArray[Any], null: Bool | None = None) -> Arr:
    """DATE from days since the epoch."""
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=null)


def booleans(values: Bool) -> Arr:
    return pa.array(values, type=pa.bool_())


def int32s(values: npt.NDArray[Any], null: Bool | None = None) -> Arr:
    return pa.array(np.asarray(values, dtype=np.int32), type=pa.int32(), mask=null)


def decimal_cents(cents: npt.NDArray[Any], null: Bool | None = None) -> Arr:
    """DECIMAL(12,2) from integer cents, built on the raw 128-bit buffer (exact, no floats)."""
    c = np.asarray(cents, dtype=np.int64)
    n = len(c)
    words = np.empty((n, 2), dtype=np.int64)
    words[:, 0] = c
    words[:, 1] = np.where(c < 0, -1, 0)
    validity = None
    if null is not None and null.any():
        validity = pa.array(~null, type=pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.decimal128(12, 2), n, [validity, pa.py_buffer(words)])


def repeat_index(counts: npt.NDArray[Any]) -> tuple[I64, I64]:
    """For per-parent ``counts``: (parent index of every child, position within parent)."""
    c = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(c), dtype=np.int64), c)
    starts = np.cumsum(c) - c
    pos = np.arange(len(parent), dtype=np.int64) - np.repeat(starts, c)
    return parent, pos


def pick(rng: Rng, n: int, weights: Sequence[float]) -> npt.NDArray[np.int64]:
    """``n`` category indices drawn with the given (unnormalised) weights."""
    w = np.asarray(weights, dtype=np.float64)
    cum = np.cumsum(w / w.sum())
    cum[-1] = 1.0
    return np.searchsorted(cum, rng.random(n), side="right").astype(np.int64)


def ensure_coverage(
    rng: Rng, values: npt.NDArray[np.int64], n_categories: int, eligible: Bool | None = None
) -> npt.NDArray[np.int64]:
    """Overwrite a few positions so that every category occurs at least once (if room).

    Small data sets should still show every kind of record; large ones are
    practically unaffected. Only rows of a category occurring more than once
    are overwritten, so no category disappears. ``-1`` marks "no category".
    """
    out = values.copy()
    for cat in range(n_categories):  # a handful of categories, not rows
        if (out == cat).any():
            continue
        counts = np.bincount(out[out >= 0], minlength=n_categories)
        donors = np.flatnonzero((out >= 0) & (counts[np.maximum(out, 0)] > 1))
        if eligible is not None:
            donors = donors[eligible[donors]]
        if len(donors) == 0:
            continue
        out[donors[int(rng.integers(0, len(donors)))]] = cat
    return out
