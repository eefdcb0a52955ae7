"""scrape-trending: start an Apify hashtag scrape whose webhook brings the videos in.

Hashtags come from SCRAPER_HASHTAGS (trimmed, lowercased, '#' stripped, de-duplicated) or the
original's 14 defaults. Before starting, runs whose items never arrived (a lost delivery, a
crashed ingest) are picked up again. Without APIFY_TOKEN the job is skipped, not failed; a
dry run says what it would scrape and starts, records and ingests nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.ingest.apify_runs import (
    WEBHOOK_PATH,
    RunIngest,
    ingest_pending_runs,
    record_apify_run,
)
from virtuna.log import get_logger, stage
from virtuna.store import connect, one, utcnow

log = get_logger(__name__)

DEFAULT_HASHTAGS = (
    "trending",
    "viral",
    "fyp",
    "comedy",
    "dance",
    "cooking",
    "fitness",
    "fashion",
    "beauty",
    "tech",
    "education",
    "storytelling",
    "lifehack",
    "motivation",
)
STALE_AFTER = timedelta(hours=24)
DRY_RUN_REASON = "dry run: no Apify run started and no earlier run ingested"


@dataclass
class ScrapeStart:
    """What the job did: skipped (with why) or the run it started, and runs it caught up."""

    status: str  # started, skipped, dry-run
    reason: str | None = None
    run_id: str | None = None
    hashtags: list[str] = field(default_factory=list)
    caught_up: list[RunIngest] = field(default_factory=list)
    stale: bool = False


def scrape_hashtags(settings: Settings) -> list[str]:
    """The hashtags to scrape: SCRAPER_HASHTAGS, cleaned, or the defaults."""
    return settings.hashtag_list() or list(DEFAULT_HASHTAGS)


def store_freshness(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, int]:
    """When the newest video arrived (scrape time, else ingest time; None if none) and how many
    videos the store holds."""
    newest, videos = one(
        con, "SELECT max(coalesce(scraped_at, ingested_at)), count(*) FROM scraped_videos"
    )
    return newest, int(videos)  # type: ignore[return-value, call-overload]


def newest_video_age(db_path: Path | str | None = None) -> timedelta | None:
    """How long ago the newest video arrived (scrape time, else ingest time); None if none."""
    with connect(db_path) as con:
        newest, _ = store_freshness(con)
    return None if newest is None else utcnow() - newest


def scrape_trending(
    *,
    results_per_page: int = 100,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: ApifyClient | None = None,
    dry_run: bool = False,
) -> ScrapeStart:
    """The scrape-trending job."""
    settings = settings or get_settings()
    with stage("scrape-trending") as current:
        age = newest_video_age(db_path)
        stale = age is None or age > STALE_AFTER
        if stale:
            log.warning(
                "scraped videos are stale",
                newest_age_hours=None if age is None else round(age.total_seconds() / 3600, 1),
                threshold_hours=STALE_AFTER.total_seconds() / 3600,
            )
        client = client or client_from_settings(settings)
        if client is None:
            log.warning("scrape-trending skipped", reason="APIFY_TOKEN not configured")
            return ScrapeStart("skipped", reason="APIFY_TOKEN not configured", stale=stale)
        hashtags = scrape_hashtags(settings)
        if dry_run:
            client.close()
            return ScrapeStart("dry-run", reason=DRY_RUN_REASON, hashtags=hashtags, stale=stale)
        with client:
            caught_up = ingest_pending_runs(client, db_path=db_path)
            secret = settings.apify_webhook_secret
            run = client.start_run(
                settings.apify_actor_id,
                {"hashtags": hashtags, "resultsPerPage": results_per_page},
                webhook_url=settings.public_base_url + WEBHOOK_PATH,
                webhook_secret=secret.get_secret_value() if secret else None,
            )
        record_apify_run(run, kind="trending", hashtags=hashtags, db_path=db_path)
        current.fields.update(run_id=run.id, hashtags=len(hashtags), caught_up=len(caught_up))
    return ScrapeStart(
        "started", run_id=run.id, hashtags=hashtags, caught_up=caught_up, stale=stale
    )
