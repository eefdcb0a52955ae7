"""One writer thread per process user (the engine): writes batched into short transactions.

Many analyses finishing at once would each open the store for their own small write, and the
file lock would pass between them so often that another process (an ingest, a job) rarely
gets it. The writer takes every pending write from a bounded queue and runs them in ONE short
transaction. It keeps the store open while writes come close together and lets go of it soon
after the last, or at once when another process waits for it. A write never gets lost to a
busy store: while another process holds the lock longer than the lock timeout, the writer
keeps the batch and tries again; `close()` flushes everything that was queued. A write that
fails for another reason (bad data) is retried alone, so it fails only itself, and its caller
sees the error.

A write is a function of the connection, or `Rows` (rows for tables): when a batch holds only
rows, those of one table are inserted with ONE statement (a hundred analyses cost about what
one does: DuckDB's cost is per statement, not per row).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from virtuna.log import get_logger
from virtuna.store.connection import (
    MEMORY,
    StoreLockedError,
    close_connection,
    earlier_waiter,
    open_connection,
    transaction,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class Rows:
    """Rows for one table (tuples in `columns` order); callable as a write. `then` are more
    rows written after these in the same transaction (e.g. an analysis, then its LLM calls)."""

    table: str
    columns: tuple[str, ...]
    values: list[tuple[Any, ...]]
    then: tuple[Rows, ...] = field(default=())

    def __call__(self, con: duckdb.DuckDBPyConnection) -> None:
        """Insert these rows, then the `then` rows."""
        insert_rows(con, [self])

    def parts(self) -> list[Rows]:
        """These rows and the `then` rows, each without its own `then`."""
        return [
            Rows(self.table, self.columns, self.values),
            *(p for r in self.then for p in r.parts()),
        ]


def insert_rows(con: duckdb.DuckDBPyConnection, writes: Sequence[Rows]) -> None:
    """Insert every write's rows: one statement per table (in first-seen order) through an
    Arrow table, whose columns DuckDB casts to the table's types."""
    grouped: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for part in (p for w in writes for p in w.parts()):
        grouped.setdefault((part.table, part.columns), []).extend(part.values)
    for (table, columns), values in grouped.items():
        if not values:
            continue
        arrow = pa.table({c: pa.array([v[i] for v in values]) for i, c in enumerate(columns)})
        names = ", ".join(columns)
        con.register("_rows", arrow)
        try:
            con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _rows")
        finally:
            # In a transaction a failed insert aborted, unregistering fails too and would hide
            # the insert's error; the next register replaces the view anyway.
            with contextlib.suppress(duckdb.TransactionException):
                con.unregister("_rows")


Write = Callable[[duckdb.DuckDBPyConnection], None] | Rows

MAX_BATCH = 200
MAX_QUEUED = 2000  # callers wait (backpressure) rather than the queue growing without bound
RETRY_PAUSE_S = 0.2
LINGER_S = 0.5  # how long the store stays open after the last write
POLL_S = 0.02  # how often an idle open store checks for other processes waiting


class StoreWriter:
    """A thread that runs queued writes against one store in short, batched transactions."""

    def __init__(self, db_path: Path | str | None, *, name: str = "store-writer") -> None:
        """A writer for the store at db_path; its thread starts with the first write."""
        self.db_path = db_path
        self._name = name
        self._queue: queue.Queue[tuple[Write, Future[None]] | None] = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._con: duckdb.DuckDBPyConnection | None = None

    def submit(self, write: Write) -> Future[None]:
        """Queue a write; the future completes once it is committed (or failed on its own)."""
        if self._closed:
            raise RuntimeError("the store writer is closed")
        self._ensure_started()
        done: Future[None] = Future()
        self._queue.put((write, done))
        return done

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken by the thread."""
        return self._queue.qsize()

    def close(self) -> None:
        """Write everything queued, then stop the thread (waits as long as the store is busy)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._next()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
        self._release()

    def _next(self) -> tuple[Write, Future[None]] | None:
        """The next queued write. The store stays open between writes that come close
        together (opening it costs ~30 ms) and is let go after LINGER_S without a write, or at
        once when another process waits for it."""
        idle_since = time.monotonic()
        while True:
            if self._con is None:
                return self._queue.get()
            try:
                return self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if time.monotonic() - idle_since > LINGER_S or self._others_wait():
                    self._release()

    def _others_wait(self) -> bool:
        target = str(self.db_path) if self.db_path is not None else None
        return target not in (None, MEMORY) and earlier_waiter(target, time.time())

    def _release(self) -> None:
        if self._con is not None:
            close_connection(self._con)
            self._con = None

    def _write(self, batch: list[tuple[Write, Future[None]]]) -> None:
        """Commit the batch in one transaction, waiting out a busy store; isolate bad writes."""
        while True:
            try:
                if self._con is None:
                    self._con = open_connection(self.db_path)
                con = self._con
                try:
                    with transaction(con):
                        writes = [write for write, _ in batch]
                        if all(isinstance(w, Rows) for w in writes):
                            insert_rows(con, writes)  # type: ignore[arg-type]
                        else:
                            for write in writes:
                                write(con)
                except duckdb.Error:
                    if len(batch) == 1:
                        raise
                    # One bad write must not fail the others: each alone, same connection.
                    for write, done in batch:
                        try:
                            with transaction(con):
                                write(con)
                        except Exception as exc:
                            done.set_exception(exc)
                        else:
                            done.set_result(None)
                    return
            except StoreLockedError:
                # Another process holds the store beyond the lock timeout: keep the batch.
                log.warning("store busy, writes kept for the next try", writes=len(batch))
                time.sleep(RETRY_PAUSE_S)
                continue
            except Exception as exc:
                self._release()  # the connection may be unusable after an unexpected error
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                return
            for _, done in batch:
                done.set_result(None)
            if self._others_wait():
                self._release()
            return
