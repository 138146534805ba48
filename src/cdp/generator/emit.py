"""Writing generated rows: dirt, raw rows, truth rows, through the writer threads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from cdp.generator import activity as act
from cdp.generator.dirt import DirtContext, apply_dirt, kinds_for
from cdp.generator.model import Batch, Frame, Rows, TruthPart
from cdp.generator.people import Counters
from cdp.generator.store import Sink, raw_table, truth_table
from cdp.generator.vec import I64, US_PER_SECOND, Rng, take


@dataclass
class Writer:
    """Appends chunks to both databases (through writer threads) and counts the rows."""

    raw_sink: Sink
    truth_sink: Sink
    batch: Batch
    raw_rows: Counter[str] = field(default_factory=Counter)
    truth_rows: Counter[str] = field(default_factory=Counter)
    _seq: int = 0

    @property
    def raw(self) -> duckdb.DuckDBPyConnection:
        """The raw connection, for reads: waits for pending writes first."""
        self.raw_sink.flush()
        return self.raw_sink.con

    @property
    def truth(self) -> duckdb.DuckDBPyConnection:
        self.truth_sink.flush()
        return self.truth_sink.con

    def commit_point(self) -> None:
        """Commit what is queued so far (bounded memory) and continue in a new transaction."""
        for sink in (self.raw_sink, self.truth_sink):
            sink.execute("commit")
            sink.execute("begin transaction")

    def loaded_at(self) -> int:
        """Each write of the loader is stamped a second after the previous one."""
        self._seq += 1
        return self.batch.load_us + self._seq * US_PER_SECOND

    def raw_insert(self, target: str, table: pa.Table) -> None:
        self.raw_sink.insert(target, table)
        self.raw_rows[target] += table.num_rows

    def raw_rows_out(self, rows: Rows) -> None:
        target = f"{rows.schema}.{rows.table}"
        self.raw_insert(target, raw_table(rows, self.batch.id, self.loaded_at()))

    def truth_out(self, part: TruthPart) -> None:
        for name, tables in part.tables.items():
            table = truth_table(name, tables)
            self.truth_sink.insert(name, table)
            self.truth_rows[name] += table.num_rows

    def truth_one(self, name: str, table: pa.Table) -> None:
        part = TruthPart()
        part.add(name, table)
        self.truth_out(part)

    def records(self, rows: Rows, frame: Frame) -> None:
        self.truth_one(
            "records",
            act.records(self.batch, rows.schema, rows.table, rows.key, frame, rows.person),
        )

    def dirty(self, rows: Rows, frame: Frame | None, rng: Rng) -> Rows:
        kinds = kinds_for(rows.schema, rows.table, self.batch.no)
        out, copies, dirt = apply_dirt(rows, kinds, rng, DirtContext(self.batch, frame))
        self.raw_rows_out(out)
        if copies is not None:
            self.raw_rows_out(copies)
        self.truth_one("dirt", dirt)
        return out


def _withdrawals_after_dirt(part: TruthPart, dirty_rows: Rows) -> TruthPart:
    """Withdrawal times as delivered (a late event was captured earlier than it arrived)."""
    out = TruthPart()
    for name, tables in part.tables.items():
        for t in tables:
            if name == "withdrawals":
                idx = t.column("row_index").to_numpy()
                t = t.set_column(
                    t.schema.get_field_index("captured_at"),
                    "captured_at",
                    take(dirty_rows.cols["captured_at"], idx),
                ).drop(["row_index"])
            out.add(name, t)
    return out


def emit_consents(w: Writer, rows: Rows, truth: TruthPart, frame: Frame, rng: Rng) -> None:
    w.records(rows, frame)
    dirty = w.dirty(rows, frame, rng)
    w.truth_out(_withdrawals_after_dirt(truth, dirty))


def emit_activity(
    w: Writer,
    batch: Batch,
    counters: Counters,
    frame: Frame,
    rng: Callable[[int], Rng],
    *,
    sessions: I64,
    signup: np.ndarray,
    n_orders: I64,
    n_messages: I64,
    requests: np.ndarray,
    consents_new: bool,
    n_consent_changes: I64 | None,
) -> None:
    if sessions.sum():
        web = act.web_events(batch, rng(2), frame, sessions, signup)
        w.records(web, frame)
        w.dirty(web, frame, rng(12))
    if n_orders.sum():
        nos = counters.take("order", int(n_orders.sum()))
        order_rows, items, truth = act.orders(batch, rng(4), frame, n_orders, nos)
        w.truth_out(truth)
        w.dirty(order_rows, frame, rng(14))
        w.dirty(items, frame, rng(15))
    if n_messages.sum():
        nos = counters.take("message", int(n_messages.sum()))
        msg = act.messages(batch, rng(5), frame, n_messages, nos)
        w.records(msg, frame)
        w.dirty(msg, frame, rng(16))
    if consents_new:
        rows, truth = act.consents_initial(batch, rng(6), frame)
        emit_consents(w, rows, truth, frame, rng(17))
    if n_consent_changes is not None and n_consent_changes.sum():
        rows, truth = act.consent_changes(batch, rng(7), frame, n_consent_changes)
        emit_consents(w, rows, truth, frame, rng(18))
    if requests.any():
        nos = counters.take("request", int(requests.sum()))
        req, truth = act.subject_requests(batch, rng(8), frame, requests, nos)
        w.records(req, frame)
        w.truth_out(truth)
        w.dirty(req, frame, rng(19))
