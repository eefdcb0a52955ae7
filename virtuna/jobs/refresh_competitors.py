"""refresh-competitors: re-scrape every tracked creator; one snapshot per creator per day.

Runs whose items never arrived are picked up first; then a profile scrape starts for each
tracked creator. The daily snapshot (`creator_snapshots`) is written when a profile scrape's
items are ingested. Without APIFY_TOKEN the job is skipped, not failed; a dry run lists the
creators it would re-scrape and requests nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.ingest.apify_runs import RunIngest, ingest_pending_runs
from virtuna.ingest.profiles import ProfileRequest, request_profile_scrape
from virtuna.log import get_logger, stage
from virtuna.store import connect
from virtuna.store.creators import tracked_handles

log = get_logger(__name__)
DRY_RUN_REASON = "dry run: no profile scrape requested and no earlier run ingested"


@dataclass
class RefreshResult:
    """What the job did."""

    status: str  # done, skipped, dry-run
    reason: str | None = None
    handles: list[str] = field(default_factory=list)  # the tracked creators
    requests: list[ProfileRequest] = field(default_factory=list)
    caught_up: list[RunIngest] = field(default_factory=list)


def refresh_competitors(
    *,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: ApifyClient | None = None,
    dry_run: bool = False,
) -> RefreshResult:
    """The refresh-competitors job."""
    settings = settings or get_settings()
    with stage("refresh-competitors") as current:
        with connect(db_path) as con:
            handles = tracked_handles(con)
        client = client or client_from_settings(settings)
        if client is None:
            log.warning("refresh-competitors skipped", reason="APIFY_TOKEN not configured")
            return RefreshResult("skipped", reason="APIFY_TOKEN not configured", handles=handles)
        if dry_run:
            client.close()
            return RefreshResult("dry-run", reason=DRY_RUN_REASON, handles=handles)
        with client:
            caught_up = ingest_pending_runs(client, db_path=db_path)
            requests = [
                request_profile_scrape(h, db_path=db_path, settings=settings, client=client)
                for h in handles
            ]
        failed = [r for r in requests if r.status == "failed"]
        current.fields.update(creators=len(handles), failed=len(failed))
    return RefreshResult("done", handles=handles, requests=requests, caught_up=caught_up)


@dataclass(frozen=True)
class CreatorTables:
    """What the store holds on creators, as the report shows it."""

    tracked: pd.DataFrame  # the tracked creators and their last profile scrape
    latest: pd.DataFrame  # each creator's latest daily snapshot, change since the one before
    history: pd.DataFrame  # every snapshot: handle, snapshot_date, followers


def creator_tables(con: duckdb.DuckDBPyConnection) -> CreatorTables:
    """The tracked creators, their latest snapshots (most followed first) and the history."""
    tracked = con.sql(
        "SELECT handle, nickname, followers, hearts, videos, verified, scrape_status, "
        "last_error, last_scraped_at FROM creators WHERE tracked ORDER BY handle"
    ).df()
    latest = con.sql(
        """
        SELECT s.handle, c.tracked, s.snapshot_date, s.followers, s.hearts, s.videos,
               lag(s.snapshot_date) OVER w AS previous_snapshot,
               s.followers - lag(s.followers) OVER w AS followers_change,
               s.hearts - lag(s.hearts) OVER w AS hearts_change,
               s.videos - lag(s.videos) OVER w AS videos_change,
               s.taken_at
        FROM creator_snapshots s LEFT JOIN creators c USING (handle)
        WINDOW w AS (PARTITION BY s.handle ORDER BY s.snapshot_date)
        QUALIFY row_number() OVER (PARTITION BY s.handle ORDER BY s.snapshot_date DESC) = 1
        ORDER BY s.followers DESC NULLS LAST, s.handle
        """
    ).df()
    history = con.sql(
        "SELECT handle, snapshot_date, followers FROM creator_snapshots "
        "ORDER BY handle, snapshot_date"
    ).df()
    return CreatorTables(tracked, latest, history)
