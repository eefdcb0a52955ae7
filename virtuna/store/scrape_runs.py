"""scrape_runs: Apify runs we started or were told about, and their ingest state.

A run's items are ingested once: `claim_ingest` marks a finished run as being ingested (unless
it already was, or another claim is fresh), and `finish_ingest` records the counts. A claim
older than `CLAIM_TIMEOUT` belongs to a crashed worker and is taken over, so a crash midway is
retried by the next webhook delivery or job instead of being lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from virtuna.store.connection import run, transaction, utcnow

CLAIM_TIMEOUT = timedelta(minutes=15)
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED")


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


_COLUMNS = (
    "run_id, kind, actor_id, state, dataset_id, hashtags, handle, item_count, suspect, error, "
    "started_at, finished_at, ingested_at, ingest_claimed_at"
)


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
        {
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
        },
    )


def claim_ingest(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Claim a finished, not yet ingested run for ingesting; False if done or claimed by another."""
    now = utcnow()
    with transaction(con):
        rows = run(
            con,
            "UPDATE scrape_runs SET ingest_claimed_at = $now WHERE run_id = $id "
            "AND state = 'SUCCEEDED' AND ingested_at IS NULL "
            "AND (ingest_claimed_at IS NULL OR ingest_claimed_at < $stale) RETURNING run_id",
            {"now": now, "id": run_id, "stale": now - CLAIM_TIMEOUT},
        )
    return bool(rows)


def release_claim(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> None:
    """Give a claim back after a failed ingest, recording why (the next delivery retries)."""
    run(
        con,
        "UPDATE scrape_runs SET ingest_claimed_at = NULL, error = $error WHERE run_id = $id",
        {"id": run_id, "error": error},
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
    run(
        con,
        "UPDATE scrape_runs SET ingested_at = $now, item_count = $items, inserted = $inserted, "
        "updated = $updated, rejected = $rejected, suspect = ($items = 0), error = NULL "
        "WHERE run_id = $id",
        {
            "now": utcnow(),
            "items": item_count,
            "inserted": inserted,
            "updated": updated,
            "rejected": rejected,
            "id": run_id,
        },
    )


def runs_awaiting_ingest(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Succeeded runs whose items were never (fully) ingested: a crash or a lost delivery."""
    rows = run(
        con,
        "SELECT run_id FROM scrape_runs WHERE state = 'SUCCEEDED' AND ingested_at IS NULL "
        "ORDER BY started_at",
    )
    return [str(r[0]) for r in rows]
