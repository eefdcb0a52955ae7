"""scrape_runs: Apify runs we started or were told about, and their ingest state.

A run's items are ingested once: `try_claim` marks a finished run as being ingested by this
process (unless it already was, or a live holder has it), the holder beats `heartbeat` as it
stores pages, and `finish_ingest` records the counts. A claim belongs to a live holder: on
this host its process must still run (pid and start time checked, so a reused pid does not
count); a holder on another host must have beaten within `LEASE`; and no claim outlives
`CLAIM_TIMEOUT` without a beat. A claim whose holder died is taken over at once, and the
ingest resumes by reading the dataset again (the upsert makes that safe).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal

import duckdb

from virtuna.store.connection import retry_conflicts, run, transaction, utcnow

CLAIM_TIMEOUT = timedelta(minutes=15)
LEASE = timedelta(minutes=2)
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED")
UNKNOWN_STATE = "UNKNOWN"  # Apify answered 404 for the run: never to be asked again
# Only one process has the store open at a time, so writes to a run's row race only between
# this process's threads. DuckDB does not always see two writes of one row as a conflict (an
# upsert from an older snapshot can put back a claim another thread just took), so every
# write to scrape_runs in this process queues here; each is one short statement.
_ROW_WRITES = threading.RLock()


@dataclass(frozen=True)
class ScrapeRun:
    """One row of scrape_runs."""

    run_id: str
    kind: str
    actor_id: str
    state: str
    dataset_id: str | None
    hashtags: list[str] | None
    handle: str | None
    item_count: int | None
    suspect: bool
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    ingested_at: datetime | None
    ingest_claimed_at: datetime | None
    ingest_holder: str | None = None
    ingest_heartbeat_at: datetime | None = None


_COLUMNS = (
    "run_id, kind, actor_id, state, dataset_id, hashtags, handle, item_count, suspect, error, "
    "started_at, finished_at, ingested_at, ingest_claimed_at, ingest_holder, ingest_heartbeat_at"
)


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux), None when not readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


@cache
def _host() -> str:
    return socket.gethostname()


def current_holder() -> str:
    """This process as a claim holder: `host:pid:start-time`."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_time(pid) or ''}"


def holder_alive(holder: str | None, heartbeat_at: datetime | None, now: datetime) -> bool:
    """Whether the claim's holder may still be working on it."""
    if holder is None or heartbeat_at is None or now - heartbeat_at > CLAIM_TIMEOUT:
        return False
    host, _, rest = holder.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _host():
        return now - heartbeat_at <= LEASE
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    started = _start_time(pid)
    if started is None and Path("/proc/self/stat").exists():
        return False  # /proc works here and has no such live process
    if started is not None:
        return not start or started == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Claim:
    """The result of trying to claim a run's ingest."""

    outcome: Literal["claimed", "done", "held", "not-succeeded", "unknown"]
    holder: str | None = None
    resumed: bool = False  # a dead holder's claim was taken over

    @property
    def held_here(self) -> bool:
        """The live claim is this very process's (an ingest of it is under way here)."""
        return self.outcome == "held" and self.holder == current_holder()


def get_scrape_run(con: duckdb.DuckDBPyConnection, run_id: str) -> ScrapeRun | None:
    """The stored run, if we know it."""
    rows = run(con, f"SELECT {_COLUMNS} FROM scrape_runs WHERE run_id = ?", [run_id])
    return ScrapeRun(*rows[0]) if rows else None  # type: ignore[arg-type]


def record_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    kind: str,
    actor_id: str,
    state: str,
    dataset_id: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    hashtags: list[str] | None = None,
    handle: str | None = None,
    error: str | None = None,
) -> None:
    """Insert a run or update its state; what was known before is kept when not given."""
    params = {
        "id": run_id,
        "kind": kind,
        "actor": actor_id,
        "tags": hashtags,
        "handle": handle,
        "state": state,
        "dataset": dataset_id,
        "error": error,
        "started": started_at,
        "finished": finished_at,
        "now": utcnow(),
    }
    # Concurrent deliveries of one run upsert the same row: the loser retries and updates.
    with _ROW_WRITES:
        retry_conflicts(lambda: _upsert_run(con, params))


def _upsert_run(con: duckdb.DuckDBPyConnection, params: dict[str, object]) -> None:
    run(
        con,
        "INSERT INTO scrape_runs (run_id, kind, actor_id, hashtags, handle, state, dataset_id, "
        "error, started_at, finished_at) VALUES ($id, $kind, $actor, $tags, $handle, $state, "
        "$dataset, $error, coalesce($started, $now), $finished) "
        "ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, "
        "dataset_id = coalesce(excluded.dataset_id, scrape_runs.dataset_id), "
        "finished_at = coalesce(excluded.finished_at, scrape_runs.finished_at), "
        "error = coalesce(excluded.error, scrape_runs.error), "
        "hashtags = coalesce(scrape_runs.hashtags, excluded.hashtags), "
        "handle = coalesce(scrape_runs.handle, excluded.handle)",
        params,
    )


def try_claim(con: duckdb.DuckDBPyConnection, run_id: str) -> Claim:
    """Claim a succeeded, not yet ingested run for this process, unless a live holder has it."""
    me = current_holder()

    def attempt() -> Claim:
        now = utcnow()
        with transaction(con):
            rows = run(
                con,
                "SELECT state, ingested_at, ingest_claimed_at, ingest_holder, "
                "ingest_heartbeat_at FROM scrape_runs WHERE run_id = ?",
                [run_id],
            )
            if not rows:
                return Claim("unknown")
            state, ingested_at, claimed_at, holder, beat = rows[0]
            if ingested_at is not None:
                return Claim("done")
            if state != "SUCCEEDED":
                return Claim("not-succeeded")
            if claimed_at is not None:
                # A claim from before holders were recorded counts by its age alone.
                alive = (
                    holder_alive(holder, beat, now)
                    if holder is not None
                    else now - claimed_at <= CLAIM_TIMEOUT
                )
                if alive:
                    return Claim("held", holder=holder)
            run(
                con,
                "UPDATE scrape_runs SET ingest_claimed_at = $now, ingest_holder = $me, "
                "ingest_heartbeat_at = $now WHERE run_id = $id",
                {"now": now, "me": me, "id": run_id},
            )
            return Claim("claimed", holder=me, resumed=claimed_at is not None)

    with _ROW_WRITES:
        return retry_conflicts(attempt)


class ClaimLostError(RuntimeError):
    """Another process took this process's claim over (it judged the holder dead)."""


def heartbeat(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Show that this process still works on its claim; raise if the claim is no longer ours."""
    with _ROW_WRITES:
        rows = retry_conflicts(
            lambda: run(
                con,
                "UPDATE scrape_runs SET ingest_heartbeat_at = $now WHERE run_id = $id "
                "AND ingest_holder = $me AND ingested_at IS NULL RETURNING run_id",
                {"now": utcnow(), "id": run_id, "me": current_holder()},
            )
        )
    if not rows:
        raise ClaimLostError(f"the ingest claim of run {run_id} was taken over by another process")


def release_claim(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> None:
    """Give a claim back after a failed ingest, recording why (the next delivery retries)."""
    with _ROW_WRITES:
        _release(con, run_id, error)


def _release(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> None:
    retry_conflicts(
        lambda: run(
            con,
            "UPDATE scrape_runs SET ingest_claimed_at = NULL, ingest_holder = NULL, "
            "ingest_heartbeat_at = NULL, error = $error WHERE run_id = $id "
            "AND (ingest_holder IS NULL OR ingest_holder = $me)",
            {"id": run_id, "error": error, "me": current_holder()},
        )
    )


def finish_ingest(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    item_count: int,
    inserted: int,
    updated: int,
    rejected: int,
) -> None:
    """Record a run's ingest as done; a run that succeeded with no items is marked suspect."""
    params = {
        "now": utcnow(),
        "items": item_count,
        "inserted": inserted,
        "updated": updated,
        "rejected": rejected,
        "id": run_id,
    }
    with _ROW_WRITES:
        _finish(con, params)


def _finish(con: duckdb.DuckDBPyConnection, params: dict[str, object]) -> None:
    retry_conflicts(
        lambda: run(
            con,
            "UPDATE scrape_runs SET ingested_at = $now, item_count = $items, "
            "inserted = $inserted, updated = $updated, rejected = $rejected, "
            "suspect = ($items = 0), error = NULL WHERE run_id = $id",
            params,
        )
    )


def runs_awaiting_ingest(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Succeeded runs whose items were never (fully) ingested: a crash or a lost delivery."""
    rows = run(
        con,
        "SELECT run_id FROM scrape_runs WHERE state = 'SUCCEEDED' AND ingested_at IS NULL "
        "ORDER BY started_at",
    )
    return [str(r[0]) for r in rows]
