"""Creator profile scrapes (Apify's TikTok profile scraper), started on request.

`request_profile_scrape` tracks the creator and starts the scrape, then returns: the run's
webhook (or the next scrape job) ingests the creator's recent videos and profile counts.
Failures are logged and recorded on the creator (`creators.scrape_status`, `last_error`);
they are never raised to the caller. Only a handle that is not a handle is the caller's error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.ingest.apify_runs import (
    PROFILE_ACTOR_ID,
    WEBHOOK_PATH,
    RunIngest,
    ingest_run,
    record_apify_run,
)
from virtuna.log import get_logger
from virtuna.store import connect
from virtuna.store.creators import normalize_handle, set_scrape_status, track_creator

log = get_logger(__name__)


@dataclass(frozen=True)
class ProfileRequest:
    """The outcome of asking for a profile scrape."""

    handle: str
    status: str  # running, not-configured, failed
    run_id: str | None = None
    error: str | None = None


def request_profile_scrape(
    handle: str,
    *,
    results_per_page: int = 30,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: ApifyClient | None = None,
) -> ProfileRequest:
    """Track a creator and start their profile scrape (ValueError only for a bad handle)."""
    clean = normalize_handle(handle)
    settings = settings or get_settings()
    with connect(db_path) as con:
        track_creator(con, clean)
    own_client = client is None
    client = client or client_from_settings(settings)
    if client is None:
        reason = "APIFY_TOKEN not configured"
        log.warning("profile scrape not started", handle=clean, reason=reason)
        with connect(db_path) as con:
            set_scrape_status(con, clean, "not-configured", reason)
        return ProfileRequest(clean, "not-configured", error=reason)
    try:
        secret = settings.apify_webhook_secret
        run = client.start_run(
            PROFILE_ACTOR_ID,
            {"profiles": [clean], "resultsPerPage": results_per_page},
            webhook_url=settings.public_base_url + WEBHOOK_PATH,
            webhook_secret=secret.get_secret_value() if secret else None,
        )
        record_apify_run(run, kind="profile", handle=clean, db_path=db_path)
        with connect(db_path) as con:
            set_scrape_status(con, clean, "running")
        return ProfileRequest(clean, "running", run_id=run.id)
    except Exception as exc:  # recorded on the creator, never raised
        error = f"{type(exc).__name__}: {exc}"
        log.error("profile scrape failed to start", handle=clean, error=error)
        with connect(db_path) as con:
            set_scrape_status(con, clean, "failed", error)
        return ProfileRequest(clean, "failed", error=error)
    finally:
        if own_client:
            client.close()


def request_profile_scrape_in_background(handle: str, **kwargs: object) -> threading.Thread:
    """Start `request_profile_scrape` on a daemon thread and return at once."""
    normalize_handle(handle)  # a bad handle is still the caller's error, raised now
    thread = threading.Thread(
        target=request_profile_scrape, args=(handle,), kwargs=kwargs, daemon=True
    )
    thread.start()
    return thread


def wait_and_ingest(
    client: ApifyClient,
    run_id: str,
    *,
    db_path: Path | str | None = None,
    timeout_s: float = 300.0,
    poll_s: float = 5.0,
) -> RunIngest:
    """Poll a run until it ends (no webhook needed), then ingest it."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = client.get_run(run_id)
        if run.is_terminal or time.monotonic() >= deadline:
            return ingest_run(client, run_id, db_path=db_path)
        time.sleep(poll_s)
