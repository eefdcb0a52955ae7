"""refresh-competitors: re-scrape every tracked creator; one snapshot per creator per day.

Runs whose items never arrived are picked up first; then a profile scrape starts for each
tracked creator. The daily snapshot (`creator_snapshots`) is written when a profile scrape's
items are ingested. Without APIFY_TOKEN the job is skipped, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.ingest.apify_runs import RunIngest, ingest_pending_runs
from virtuna.ingest.profiles import ProfileRequest, request_profile_scrape
from virtuna.log import get_logger, stage
from virtuna.store import connect
from virtuna.store.creators import tracked_handles

log = get_logger(__name__)


@dataclass
class RefreshResult:
    """What the job did."""

    status: str  # done, skipped
    reason: str | None = None
    requests: list[ProfileRequest] = field(default_factory=list)
    caught_up: list[RunIngest] = field(default_factory=list)


def refresh_competitors(
    *,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: ApifyClient | None = None,
) -> RefreshResult:
    """The refresh-competitors job."""
    settings = settings or get_settings()
    with stage("refresh-competitors") as current:
        with connect(db_path) as con:
            handles = tracked_handles(con)
        client = client or client_from_settings(settings)
        if client is None:
            log.warning("refresh-competitors skipped", reason="APIFY_TOKEN not configured")
            return RefreshResult("skipped", reason="APIFY_TOKEN not configured")
        with client:
            caught_up = ingest_pending_runs(client, db_path=db_path)
            requests = [
                request_profile_scrape(h, db_path=db_path, settings=settings, client=client)
                for h in handles
            ]
        failed = [r for r in requests if r.status == "failed"]
        current.fields.update(creators=len(handles), failed=len(failed))
    return RefreshResult("done", requests=requests, caught_up=caught_up)
