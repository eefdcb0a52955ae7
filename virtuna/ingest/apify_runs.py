"""Apify runs into the store: record a run's state, then ingest its dataset exactly once.

Used by the webhook (on each delivery), by the scrape jobs (to pick up runs whose delivery
was lost or whose ingest crashed), and by the creator-profile scrape. The run is always
re-fetched with our own token; a webhook payload is only a hint of which run to look at.
Items go through the same mapping as the bundled Apify file (`map_items`), page by page, with
a short store connection per page so other processes are not locked out during HTTP calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtuna.ingest import store_batch
from virtuna.ingest.apify import ApifyClient, ApifyRun
from virtuna.ingest.tiktok_items import map_items
from virtuna.log import get_logger, stage
from virtuna.store import connect
from virtuna.store.creators import save_profile, set_scrape_status, snapshot_creator
from virtuna.store.scrape_runs import (
    TERMINAL_STATES,
    UNKNOWN_STATE,
    finish_ingest,
    get_scrape_run,
    heartbeat,
    record_run,
    release_claim,
    runs_awaiting_ingest,
    try_claim,
)

log = get_logger(__name__)

PROFILE_ACTOR_ID = "clockworks~tiktok-profile-scraper"
# The service's route for Apify's run events (`virtuna.service.webhooks`): every run we start
# sends its ad-hoc webhook to PUBLIC_BASE_URL + WEBHOOK_PATH.
WEBHOOK_PATH = "/api/webhooks/apify"


@dataclass(frozen=True)
class RunIngest:
    """What happened to one run: its state and, when its items were ingested, the counts."""

    run_id: str
    state: str
    outcome: str  # ingested, duplicate, claimed-elsewhere, not-succeeded
    items: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0


def record_apify_run(
    run: ApifyRun,
    *,
    kind: str = "trending",
    hashtags: list[str] | None = None,
    handle: str | None = None,
    db_path: Path | str | None = None,
) -> None:
    """Store (or refresh) a run's state before any work on its items."""
    with connect(db_path) as con:
        record_run(
            con,
            run_id=run.id,
            kind=kind,
            actor_id=run.act_id,
            state=run.status,
            dataset_id=run.default_dataset_id,
            started_at=run.started_at,
            finished_at=run.finished_at,
            hashtags=hashtags,
            handle=handle,
        )


def _profile_from(item: dict[str, Any]) -> dict[str, Any]:
    author = item.get("authorMeta") if isinstance(item.get("authorMeta"), dict) else {}

    def count(key: str) -> int | None:
        value = author.get(key)
        return int(value) if isinstance(value, int | float) and value >= 0 else None

    verified = author.get("verified")
    return {
        "author_id": str(author["id"]) if author.get("id") is not None else None,
        "nickname": author.get("nickName"),
        "followers": count("fans"),
        "hearts": count("heart"),
        "videos": count("video"),
        "verified": verified if isinstance(verified, bool) else None,
        "bio": author.get("signature"),
    }


def ingest_run(
    client: ApifyClient,
    run_id: str,
    *,
    db_path: Path | str | None = None,
    page_size: int = 1000,
    claimed: bool = False,
) -> RunIngest:
    """Fetch a run with our token, record its state, and ingest its items once.

    `claimed` says this process already holds the run's ingest claim (`try_claim`), as the
    webhook does when it answers the delivery.
    """
    run = client.get_run(run_id)
    with connect(db_path) as con:
        known = get_scrape_run(con, run.id)
    kind = known.kind if known else "trending"
    handle = known.handle if known else None
    record_apify_run(run, kind=kind, handle=handle, db_path=db_path)
    if known is not None and known.ingested_at is not None:
        return RunIngest(run.id, run.status, "duplicate", items=known.item_count or 0)
    if not run.succeeded:
        if run.is_terminal:
            log.warning("apify run did not succeed", run_id=run.id, state=run.status, kind=kind)
            if kind == "profile" and handle:
                with connect(db_path) as con:
                    set_scrape_status(con, handle, "failed", f"Apify run {run.id}: {run.status}")
        return RunIngest(run.id, run.status, "not-succeeded")
    if not claimed:
        with connect(db_path) as con:
            claim = try_claim(con, run.id)
        if claim.outcome == "done":
            return RunIngest(run.id, run.status, "duplicate")
        if claim.outcome != "claimed":
            return RunIngest(run.id, run.status, "claimed-elsewhere")
    return _ingest_claimed(client, run, kind, handle, db_path, page_size)


def _ingest_claimed(
    client: ApifyClient,
    run: ApifyRun,
    kind: str,
    handle: str | None,
    db_path: Path | str | None,
    page_size: int,
) -> RunIngest:
    items = inserted = updated = rejected = 0
    first_item: dict[str, Any] | None = None
    seen: dict[str, int] = {}
    try:
        with stage("apify-ingest", run_id=run.id, kind=kind) as current:
            if run.default_dataset_id is None:
                raise ValueError(f"Apify run {run.id} succeeded without a default dataset")
            for page in client.iter_dataset_items(run.default_dataset_id, page_size=page_size):
                first_item = first_item or (page[0] if page else None)
                batch = map_items(
                    [json.dumps(item, ensure_ascii=False) for item in page],
                    start_position=items,
                    source="apify",
                    source_ref=run.id,
                    seen_keys=seen,
                    scraped_at=run.finished_at,
                )
                with connect(db_path) as con:
                    counts = store_batch(con, batch, source="apify", source_ref=run.id)
                    heartbeat(con, run.id)
                items += batch.read
                inserted, updated, rejected = (
                    inserted + counts[0],
                    updated + counts[1],
                    rejected + counts[2],
                )
            current.fields.update(items=items, inserted=inserted, rejected=rejected)
    except Exception as exc:
        with connect(db_path) as con:
            release_claim(con, run.id, f"{type(exc).__name__}: {exc}")
            if kind == "profile" and handle:
                set_scrape_status(con, handle, "failed", str(exc))
        raise
    with connect(db_path) as con:
        finish_ingest(
            con, run.id, item_count=items, inserted=inserted, updated=updated, rejected=rejected
        )
        if kind == "profile" and handle:
            if first_item is None:
                set_scrape_status(con, handle, "failed", f"Apify run {run.id} returned no videos")
            else:
                save_profile(con, handle, **_profile_from(first_item))
                snapshot_creator(con, handle)
    if items == 0:
        log.warning("apify run succeeded with no items", run_id=run.id, kind=kind, suspect=True)
    return RunIngest(run.id, run.status, "ingested", items, inserted, updated, rejected)


def ingest_pending_runs(
    client: ApifyClient, *, db_path: Path | str | None = None
) -> list[RunIngest]:
    """Retry every run that succeeded (or may have) but whose items are not in the store.

    Covers lost webhook deliveries and ingests that crashed midway.
    """
    with connect(db_path) as con:
        run_ids = runs_awaiting_ingest(con)
        open_ids = [
            str(r[0])
            for r in con.execute(
                "SELECT run_id FROM scrape_runs WHERE NOT list_contains($done, state) "
                "ORDER BY started_at",
                {"done": [*TERMINAL_STATES, UNKNOWN_STATE]},
            ).fetchall()
        ]
    results = []
    for run_id in [*run_ids, *open_ids]:
        try:
            results.append(ingest_run(client, run_id, db_path=db_path))
        except Exception as exc:  # one bad run must not stop the others
            log.warning("pending run not ingested", run_id=run_id, error=str(exc))
    return results


def recent_runs(con: Any, limit: int = 20) -> Any:
    """The newest `limit` runs of the ledger (trending, profile and outcome runs) as a
    DataFrame: run_id, kind, state, target (handle or hashtags), counts, error and times."""
    return con.execute(
        "SELECT run_id, kind, state, coalesce(handle, array_to_string(hashtags, ', ')) AS target, "
        "item_count, inserted, updated, rejected, suspect, error, started_at, finished_at, "
        "ingested_at FROM scrape_runs ORDER BY started_at DESC LIMIT ?",
        [limit],
    ).df()
