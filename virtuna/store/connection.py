"""Connection policy for the DuckDB store.

DuckDB lets one process hold a database file open for writing at a time, and the service, the
scheduler and notebook kernels are separate processes sharing one file. So every unit of work
opens a short-lived connection with `connect()`, does its reads and writes, and closes it. A
process that finds the file locked waits with jittered backoff, up to the lock timeout, then
fails with `StoreLockedError`. Writers never lose data; at worst they wait.

Waiting is fair between processes: a process that waits leaves a marker beside the file
(`<store>.waiting.<pid>`, holding when it began), and other processes hold back from opening
while an earlier waiter of another process is alive. Without that, a busy service that opens
and closes the file many times a second would leave an ingest or a job no gap to get in.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from virtuna.config import get_settings
from virtuna.retry import jittered, retrying
from virtuna.store.schema import migrate

MEMORY = ":memory:"
T = TypeVar("T")

# A process's connections to one file share one DuckDB database instance, made by the first
# open and torn down by the last close. Threads opening while another sets the instance up or
# tears it down got half-made instances (without the table function that reads registered
# Arrow data, so an accepted analysis was not stored), and a new instance's file lock could be
# released by the old one's close, since POSIX locks belong to the process, letting another
# process write under it ("Corrupt database file"). So opens and closes take turns.
_turns = threading.Lock()


class StoreLockedError(RuntimeError):
    """Another process held the store's lock for longer than the lock timeout."""


def utcnow() -> datetime:
    """Now in UTC as a naive datetime, the store's timestamp convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflict" in text or "could not set" in text)


def _quiet_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """Keep DuckDB's own progress bar off our consoles (the CLI draws its own)."""
    # Inside a Jupyter kernel without ipywidgets DuckDB refuses the setting and draws no bar.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")


def open_connection(
    path: Path | str | None = None,
    *,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the store, waiting for another process's lock; migrate it unless read-only."""
    settings = get_settings()
    target = str(path if path is not None else settings.virtuna_db_path)
    timeout = settings.virtuna_db_lock_timeout_s if lock_timeout_s is None else lock_timeout_s
    if target != MEMORY:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    delay = 0.01
    marker: Path | None = None
    began = time.time()
    try:
        while True:
            if target != MEMORY and earlier_waiter(target, began):
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"the store {target} was kept for other waiting processes for "
                        f"{timeout:g} s (raise VIRTUNA_DB_LOCK_TIMEOUT_S to wait longer)"
                    )
                time.sleep(0.01 * (0.5 + random.random()))
                continue
            try:
                with _turns:
                    con = duckdb.connect(target, read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"the store {target} stayed locked by another process for {timeout:g} s "
                        f"(raise VIRTUNA_DB_LOCK_TIMEOUT_S to wait longer): {exc}"
                    ) from exc
                if marker is None and target != MEMORY:
                    marker = _mark_waiting(target, began)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    con.execute("SET TimeZone = 'UTC'")
    _quiet_progress_bar(con)
    if not read_only:
        migrate(con)
    return con


def _mark_waiting(target: str, began: float) -> Path:
    """Say that this process waits for the store, and since when."""
    marker = Path(f"{target}.waiting.{os.getpid()}")
    marker.write_text(repr(began), encoding="utf-8")
    return marker


def earlier_waiter(target: str, began: float) -> bool:
    """Whether a live process other than this one has waited for the store since before
    `began` (markers of dead processes are removed)."""
    folder, name = Path(target).parent, Path(target).name + ".waiting."
    for marker in folder.glob(f"{name}*"):
        pid_text = marker.name.rsplit(".", 1)[-1]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            since = float(marker.read_text(encoding="utf-8"))
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            marker.unlink(missing_ok=True)
            continue
        except (OSError, ValueError):
            continue
        if since <= began:
            return True
    return False


@contextmanager
def connect(
    path: Path | str | None = None,
    *,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the store, closed (and its lock released) on exit."""
    con = open_connection(path, read_only=read_only, lock_timeout_s=lock_timeout_s)
    try:
        yield con
    finally:
        close_connection(con)
        changed = _changed.pop(id(con), None)
        if changed is not None:  # committed now: say so again, for readers that looked early
            _touch(changed)


def close_connection(con: duckdb.DuckDBPyConnection) -> None:
    """Close a store connection; the process's last one lets go of the file (see `_turns`)."""
    with _turns:
        con.close()


# Connections that changed what predictions read (see mark_changed), by id -> store path.
_changed: dict[int, Path] = {}


def changes_marker(path: Path | str) -> Path:
    """The file beside the store that changes whenever predictions' inputs change."""
    return Path(f"{path}.changed")


def mark_changed(con: duckdb.DuckDBPyConnection) -> None:
    """Say that `con` changed what predictions read (videos, creators, trends, rules,
    calibration maps, models): engines holding a copy of it reload. Marked now and again when
    a `connect()` block closes the connection, after its commit."""
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    if not rows or not rows[0][0]:
        return  # an in-memory store: nobody else reads it
    marker = changes_marker(rows[0][0])
    _changed[id(con)] = marker
    _touch(marker)


def _touch(marker: Path) -> None:
    # A new value every time (file times can be too coarse to tell two changes apart).
    with contextlib.suppress(OSError):
        marker.write_text(f"{time.time_ns()} {os.getpid()} {next(_stamps)}", encoding="utf-8")


_stamps = itertools.count()


def changed_at(path: Path | str) -> str:
    """A token that differs after every change of predictions' inputs in the store at `path`
    ("" if never marked)."""
    try:
        return changes_marker(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def run(
    con: duckdb.DuckDBPyConnection, sql: str, params: object = None
) -> list[tuple[object, ...]]:
    """Execute one statement and fetch its whole result.

    DuckDB keeps a statement's result open until it is fully fetched and refuses other work on
    the connection meanwhile (registering a table, say), so write statements go through here.
    """
    return con.execute(sql, params).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> tuple[object, ...]:
    """The first row of a query that returns exactly one row (a count, say)."""
    rows = run(con, sql, params)
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}: {sql}")
    return rows[0]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run a block in one transaction: committed on success, rolled back on any exception."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def is_write_conflict(exc: BaseException) -> bool:
    """Two transactions of this process wrote the same row at once (DuckDB is optimistic)."""
    text = str(exc).lower()
    # Two concurrent INSERT ... ON CONFLICT of one new key: the second sees the first's key,
    # when its statement runs (a constraint error) or when it commits (a transaction error).
    if isinstance(exc, duckdb.TransactionException):
        return "conflict" in text or "duplicate key" in text
    return isinstance(exc, duckdb.ConstraintException) and "duplicate key" in text


def retry_conflicts(work: Callable[[], T], *, attempts: int = 50) -> T:
    """Run `work` (one whole transaction or upsert) again while it loses a write conflict.

    Only for work that reads what it decides on inside its own transaction, so a retry sees
    the winner's row and decides again (an upsert, a claim); never for work with effects
    outside the store.
    """
    policy = retrying(
        attempts=attempts,
        backoff=jittered(0.002, 0.1),
        retry_on=lambda exc: isinstance(exc, duckdb.Error) and is_write_conflict(exc),
    )
    return policy(work)
