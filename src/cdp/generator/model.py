"""Shared structures: the batch context, the persons frame, generated rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cdp.generator.pools import Pools
from cdp.generator.vec import I64, U64, US_PER_DAY, US_PER_HOUR, Arr, Bool, Rng, take

CHUNK = 10_000  # persons per chunk; fixed, so output does not depend on memory settings


@dataclass(frozen=True)
class Batch:
    """One load batch: its identity and time window (epoch microseconds, UTC)."""

    no: int
    seed: int
    dirty_rate: float
    reference_day: int  # days since epoch of batch 1's reference date
    pools: Pools

    @property
    def id(self) -> str:
        return batch_id(self.no)

    @property
    def end_us(self) -> int:
        """The batch's cut-off: reference date 00:00 UTC plus one day per later batch."""
        return (self.reference_day + self.no - 1) * US_PER_DAY

    @property
    def start_us(self) -> int:
        """Batch 1 covers about three years of history; later batches one day."""
        if self.no == 1:
            return self.end_us - 3 * 365 * US_PER_DAY
        return self.end_us - US_PER_DAY

    @property
    def load_us(self) -> int:
        """When the loaders write the batch: two hours after the cut-off."""
        return self.end_us + 2 * US_PER_HOUR

    def rng(self, *stream: int) -> Rng:
        """An independent, reproducible random stream for (seed, batch, *stream)."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.no, *stream]))


def batch_id(no: int) -> str:
    return f"batch_{no:04d}"


@dataclass
class Frame:
    """Persons taking part in some activity, with their clean identifiers.

    Arrays are aligned by person (index ``i``); devices are a second aligned
    set, grouped by person (``dev_start[i]`` .. ``+ dev_count[i]``).
    """

    person_id: Arr
    locale: I64
    female: Bool
    first_name: Arr
    last_name: Arr
    customer_id: Arr
    alt_customer_id: Arr  # another CRM record of the same person, or null
    email: Arr
    phone: Arr  # E.164
    push_token: Arr
    city: Arr
    address: Arr
    signup_us: I64  # CRM created_at of the primary record
    start_us: I64  # activity window start (first visit, or the batch start)
    dev_person: I64
    dev_anon: Arr
    dev_type: I64
    dev_ua: Arr
    dev_first_us: I64

    def __len__(self) -> int:
        return len(self.locale)

    @property
    def dev_count(self) -> I64:
        return np.bincount(self.dev_person, minlength=len(self)).astype(np.int64)

    @property
    def dev_start(self) -> I64:
        c = self.dev_count
        return (np.cumsum(c) - c).astype(np.int64)

    def person_ids(self, idx: I64) -> Arr:
        """Person ids for frame indices; -1 (no person, e.g. a crawler) gives null."""
        safe = np.where(idx < 0, 0, idx)
        ids = take(self.person_id, safe)
        if (idx < 0).any():
            ids = pc.if_else(pa.array(idx < 0), pa.scalar(None, pa.string()), ids)
        return ids


@dataclass
class Rows:
    """Rows for one raw table (contract columns, loader columns excluded).

    ``key`` is the row's natural key as used in the truth file; ``person``
    the frame index of the person it belongs to (-1: none).
    """

    schema: str
    table: str
    cols: dict[str, Arr]
    key: Arr
    person: I64

    def __len__(self) -> int:
        return len(self.key)


@dataclass
class TruthPart:
    """Rows for the truth tables, keyed by truth table name."""

    tables: dict[str, list[pa.Table]] = field(default_factory=dict)

    def add(self, name: str, table: pa.Table) -> None:
        if table.num_rows:
            self.tables.setdefault(name, []).append(table)


class Registry:
    """Clean e-mail addresses and phone numbers already handed out (must stay unique).

    E-mails are kept as 64-bit hashes (DuckDB's ``hash``), phones as integers,
    each in one sorted array: membership is a binary search, adding is one
    merge (no re-hashing of everything per chunk, which would be quadratic).
    """

    def __init__(self) -> None:
        self._con = duckdb.connect()
        self.emails = np.empty(0, dtype=np.uint64)
        self.phones = np.empty(0, dtype=np.int64)

    def close(self) -> None:
        self._con.close()

    def hash(self, values: Arr) -> U64:
        tbl = pa.table({"v": values})
        self._con.register("hash_input", tbl)
        try:
            got = self._con.execute("select hash(v) as h from hash_input").fetchnumpy()["h"]
        finally:
            self._con.unregister("hash_input")
        return np.asarray(got, dtype=np.uint64)

    def has_emails(self, hashes: U64) -> Bool:
        return _member(self.emails, hashes)

    def has_phones(self, keys: I64) -> Bool:
        return _member(self.phones, keys)

    def add_emails(self, hashes: U64) -> None:
        self.emails = _merge(self.emails, hashes)

    def add_phones(self, keys: I64) -> None:
        self.phones = _merge(self.phones, keys)


def _member(sorted_values: npt.NDArray[Any], probe: npt.NDArray[Any]) -> Bool:
    if len(sorted_values) == 0 or len(probe) == 0:
        return np.zeros(len(probe), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, probe), len(sorted_values) - 1)
    return np.asarray(sorted_values[pos] == probe, dtype=bool)


def _merge(sorted_values: npt.NDArray[Any], new: npt.NDArray[Any]) -> npt.NDArray[Any]:
    new = np.sort(np.asarray(new, dtype=sorted_values.dtype))
    new = new[~_member(sorted_values, new)]
    return np.insert(sorted_values, np.searchsorted(sorted_values, new), new)
