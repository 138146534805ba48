"""Orchestration: validate, open both databases, generate a batch chunk by chunk."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from cdp import paths
from cdp.contract import TABLES
from cdp.generator import activity as act
from cdp.generator.dirt import JUNK_EMAILS, JUNK_PHONES
from cdp.generator.emit import Writer, emit_activity
from cdp.generator.increment import existing_activity, order_updates, redeliveries
from cdp.generator.model import CHUNK, Batch, Registry, batch_id
from cdp.generator.people import Counters, generate_people
from cdp.generator.pools import build_pools
from cdp.generator.store import (
    GenerationError,
    Sink,
    check_raw_contract,
    connect,
    create_raw,
    create_truth,
    prepare_path,
    private_umask,
    raw_batches,
    restrict,
)
from cdp.generator.truth import TRUTH_TABLES
from cdp.generator.vec import Rng, const, strings, timestamps

GENERATOR_VERSION = "1.0"
DEFAULT_CUSTOMERS = 1000


@dataclass(frozen=True)
class Options:
    """What to generate. ``customers=None`` means the default (see ``resolve_customers``)."""

    customers: int | None = None
    seed: int = 42
    reference_date: dt.date | None = None
    batch: int = 1
    dirty_rate: float = 0.05
    raw_db: Path | None = None
    truth_db: Path | None = None
    quiet: bool = False


@dataclass
class Summary:
    batch_id: str
    new_persons: int
    raw_rows: dict[str, int]
    truth_rows: dict[str, int]
    seconds: float
    raw_db: Path
    truth_db: Path

    def line(self) -> str:
        tables = ", ".join(
            f"{s}.{t}={self.raw_rows.get(f'{s}.{t}', 0):,}" for s in TABLES for t in TABLES[s]
        )
        return (
            f"{self.batch_id}: {self.new_persons:,} new persons; raw rows: {tables}; "
            f"truth rows: {sum(self.truth_rows.values()):,}; {self.seconds:.1f}s"
        )


def validate(opts: Options) -> None:
    if opts.batch < 1:
        raise GenerationError(f"--batch must be >= 1 (got {opts.batch})")
    if opts.customers is not None and opts.customers < 0:
        raise GenerationError(f"--customers must be >= 0 (got {opts.customers})")
    if opts.batch == 1 and opts.customers == 0:
        raise GenerationError("--customers must be > 0 for the initial load (batch 1)")
    if not (0.0 <= opts.dirty_rate <= 1.0) or math.isnan(opts.dirty_rate):
        raise GenerationError(f"--dirty-rate must be within [0, 1] (got {opts.dirty_rate})")
    if opts.seed < 0:
        raise GenerationError(f"--seed must be >= 0 (got {opts.seed})")


def _new_people(
    w: Writer, batch: Batch, counters: Counters, registry: Registry, n: int, chunk: int
) -> None:
    def rng(k: int) -> Rng:
        return batch.rng(1, chunk, k)

    people = generate_people(batch, rng(0), n, counters, registry)
    frame = people.frame
    w.truth_out(people.truth)
    w.dirty(people.crm, frame, rng(10))
    r = rng(1)
    if batch.no == 1:
        sessions = 1 + r.poisson(r.gamma(1.5, 4.2 / 1.5, n))
        n_orders = r.poisson(r.gamma(1.2, 2.5 / 1.2, n))
        n_messages = r.poisson(r.gamma(2.0, 4.3 / 2.0, n))
        requests = r.random(n) < 0.015
    else:
        sessions = 1 + r.poisson(0.5, n)
        n_orders = r.poisson(0.3, n)
        n_messages = r.poisson(0.5, n)
        requests = r.random(n) < 0.002
    if chunk == 0 and batch.no == 1 and n >= 6 and requests.sum() < 6:
        requests[r.choice(n, 6, replace=False)] = True
    emit_activity(
        w,
        batch,
        counters,
        frame,
        rng,
        sessions=sessions.astype(np.int64),
        signup=np.ones(n, dtype=bool),
        n_orders=n_orders.astype(np.int64),
        n_messages=n_messages.astype(np.int64),
        requests=requests,
        consents_new=True,
        n_consent_changes=None,
    )
    bots = act.bot_events(batch, rng(3), max(1, n // 40))
    w.records(bots, frame)
    w.dirty(bots, None, rng(13))


def _read_batches(truth: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    tbl = truth.sql("select * from batches order by batch_no").to_arrow_table()
    return list(tbl.to_pylist())


def _check_sequence(no: int, raw_ids: set[str], truth_rows: list[dict[str, Any]]) -> None:
    want_before = {batch_id(i) for i in range(1, no)}
    truth_ids = {str(r["batch_id"]) for r in truth_rows}
    this = batch_id(no)
    unmarked = sorted(raw_ids - truth_ids)
    if unmarked:
        raise GenerationError(
            f"the raw database holds rows of {', '.join(unmarked)} but the truth file has no "
            "record of finishing them (an interrupted run, or a different truth file?); "
            "use the matching truth file or remove those rows first"
        )
    if this in raw_ids or this in truth_ids:
        raise GenerationError(
            f"batch {no} ({this}) is already present; batches are append-only, "
            "generate the next batch number instead"
        )
    extra = sorted((raw_ids | truth_ids) - want_before)
    if extra:
        raise GenerationError(f"batch {no} cannot follow later batches already present: {extra}")
    missing_raw = sorted(want_before - raw_ids)
    missing_truth = sorted(want_before - truth_ids)
    if missing_raw or missing_truth:
        where_ = "raw database" if missing_raw else "truth file"
        missing = missing_raw or missing_truth
        raise GenerationError(
            f"batch {no} requires batches 1..{no - 1} to be present; missing in the {where_}: "
            f"{', '.join(missing)}"
        )


def _registry(truth: duckdb.DuckDBPyConnection) -> Registry:
    reg = Registry()
    emails = truth.execute(
        "select hash(value) from identifiers where id_type = 'email' "
        "union all select hash(value) from shared_identifiers where id_type = 'email'"
    ).fetchnumpy()
    reg.add_emails(np.asarray(next(iter(emails.values())), dtype=np.uint64))
    phones = truth.execute(
        """
        select case
            when value like '+7%' then 7 * 10000000000 + cast(substr(value, 3) as bigint)
            when value like '+44%' then 44 * 10000000000 + cast(substr(value, 4) as bigint)
            else 10000000000 + cast(substr(value, 3) as bigint) end
        from identifiers where id_type = 'phone'
        """
    ).fetchnumpy()
    reg.add_phones(np.asarray(next(iter(phones.values())), dtype=np.int64))
    return reg


def resolve_customers(opts: Options, existing_persons: int) -> int:
    if opts.customers is not None:
        return opts.customers
    if opts.batch == 1:
        return DEFAULT_CUSTOMERS
    return max(1, existing_persons // 50)


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )
    with progress:
        yield progress


def generate(opts: Options) -> Summary:
    """Generate one batch into the raw database and the truth file."""
    started = time.perf_counter()
    validate(opts)
    raw_path = prepare_path(opts.raw_db or paths.raw_db(), "raw database")
    truth_path = prepare_path(opts.truth_db or paths.truth_file(), "truth file")
    if raw_path == truth_path:
        raise GenerationError("the truth file must be a separate file from the raw database")
    with private_umask():  # DuckDB's side files (WAL, spill folder) are owner-only too
        truth = connect(truth_path, "truth file")
        try:
            raw = connect(raw_path, "raw database")
            try:
                summary = _generate(opts, raw, truth, raw_path, truth_path, started)
            finally:
                raw.close()
                restrict(raw_path)
        finally:
            truth.close()
            restrict(truth_path)
    summary.seconds = time.perf_counter() - started  # closing checkpoints the files
    return summary


def _generate(
    opts: Options,
    raw: duckdb.DuckDBPyConnection,
    truth: duckdb.DuckDBPyConnection,
    raw_path: Path,
    truth_path: Path,
    started: float,
) -> Summary:
    check_raw_contract(raw)
    create_truth(truth)
    history = _read_batches(truth)
    _check_sequence(opts.batch, raw_batches(raw), history)
    if opts.batch == 1:
        ref = opts.reference_date or dt.datetime.now(dt.UTC).date()
        counters = Counters()
        existing = 0
    else:
        first = history[0]
        ref = first["reference_date"]
        if opts.reference_date is not None and opts.reference_date != ref:
            raise GenerationError(
                f"--reference-date {opts.reference_date} differs from batch 1's ({ref}); "
                "later batches are dated from batch 1 (one day per batch)"
            )
        last = history[-1]
        counters = Counters(
            person=int(last["next_person_no"]),
            customer=int(last["next_customer_no"]),
            order=int(last["next_order_no"]),
            message=int(last["next_message_no"]),
            request=int(last["next_request_no"]),
        )
        existing = int(counters.person - 1)
    n_new = resolve_customers(opts, existing)
    pools = build_pools(opts.seed)
    batch = Batch(
        no=opts.batch,
        seed=opts.seed,
        dirty_rate=opts.dirty_rate,
        reference_day=(ref - dt.date(1970, 1, 1)).days,
        pools=pools,
    )
    registry = _registry(truth) if opts.batch > 1 else Registry()
    create_raw(raw)
    listed = truth.execute(
        "select count(*) from shared_identifiers where reason = 'junk_placeholder'"
    ).fetchone()
    list_junk = opts.dirty_rate > 0 and listed is not None and listed[0] == 0
    # One transaction per chunk: DuckDB holds on to inserted arrow buffers until commit,
    # so a batch-wide transaction would keep the whole batch in memory. A failed run
    # deletes what it wrote; the ``batches`` row in the truth file is the commit marker.
    raw.execute("begin transaction")
    truth.execute("begin transaction")
    w = Writer(Sink(raw, "raw"), Sink(truth, "truth"), batch)
    try:
        n_chunks = math.ceil(n_new / CHUNK)
        n_exist_chunks = (
            math.ceil(min(existing, round(existing * 0.21) + 13) / CHUNK) if opts.batch > 1 else 0
        )
        if list_junk:
            w.truth_one("shared_identifiers", _junk_placeholders(batch.id))
        with _progress(opts.quiet) as progress:
            task = progress.add_task(f"{batch.id}", total=n_chunks + n_exist_chunks + 1)

            def tick(k: int) -> None:
                w.commit_point()
                progress.advance(task, k)

            for c in range(n_chunks):
                size = min(CHUNK, n_new - c * CHUNK)
                _new_people(w, batch, counters, registry, size, c)
                tick(1)
            if opts.batch > 1:
                existing_activity(w, batch, counters, registry, tick)
                updates = order_updates(w.raw, batch, batch.rng(4, 0))
                if updates is not None:
                    w.dirty(updates, None, batch.rng(4, 1))
                redeliveries(w, batch)
            progress.update(task, description=f"{batch.id} writing")
            w.raw_sink.flush()
            w.raw_sink.execute("commit")
            w.truth_sink.flush()
            w.raw_sink.flush()
            w.truth_one("batches", _batch_row(batch, ref, n_new, counters))
            w.truth_sink.flush()
            w.truth_sink.execute("commit")
            w.truth_sink.flush()
            progress.update(task, completed=n_chunks + n_exist_chunks + 1)
    except BaseException:
        for sink in (w.raw_sink, w.truth_sink):
            with contextlib.suppress(BaseException):
                sink.discard()
        _discard(raw, truth, batch.id)
        raise
    finally:
        w.raw_sink.close()
        w.truth_sink.close()
        registry.close()
    return Summary(
        batch_id=batch.id,
        new_persons=n_new,
        raw_rows=dict(w.raw_rows),
        truth_rows=dict(w.truth_rows),
        seconds=time.perf_counter() - started,
        raw_db=raw_path,
        truth_db=truth_path,
    )


def _junk_placeholders(batch: str) -> pa.Table:
    """Placeholder values the loaders deliver for many different persons."""
    emails = list(dict.fromkeys(JUNK_EMAILS))
    phones = list(dict.fromkeys(JUNK_PHONES))
    n = len(emails) + len(phones)
    return pa.table(
        {
            "id_type": strings(["email"] * len(emails) + ["phone"] * len(phones)),
            "value": strings(emails + phones),
            "reason": const("junk_placeholder", n),
            "_batch_id": const(batch, n),
        }
    )


def _discard(raw: duckdb.DuckDBPyConnection, truth: duckdb.DuckDBPyConnection, batch: str) -> None:
    """Remove a failed run's rows (only this batch's; earlier batches are untouched)."""
    for con in (raw, truth):
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
    with contextlib.suppress(duckdb.Error):
        for schema, tables in TABLES.items():
            for table in tables:
                raw.execute(f"delete from {schema}.{table} where _batch_id = ?", [batch])
    with contextlib.suppress(duckdb.Error):
        for name in TRUTH_TABLES:
            col = "batch_id" if name == "batches" else "_batch_id"
            truth.execute(f"delete from {name} where {col} = ?", [batch])


def _batch_row(batch: Batch, ref: dt.date, n_new: int, counters: Counters) -> pa.Table:
    return pa.table(
        {
            "batch_id": [batch.id],
            "batch_no": pa.array([batch.no], pa.int32()),
            "seed": [batch.seed],
            "new_persons": [n_new],
            "dirty_rate": [batch.dirty_rate],
            "reference_date": pa.array([ref], pa.date32()),
            "window_start": timestamps(np.array([batch.start_us])),
            "window_end": timestamps(np.array([batch.end_us])),
            "loaded_at": timestamps(np.array([batch.load_us])),
            "next_person_no": [counters.person],
            "next_customer_no": [counters.customer],
            "next_order_no": [counters.order],
            "next_message_no": [counters.message],
            "next_request_no": [counters.request],
            "generator_version": [GENERATOR_VERSION],
        }
    )


__all__ = ["CHUNK", "GenerationError", "Options", "Summary", "generate"]
