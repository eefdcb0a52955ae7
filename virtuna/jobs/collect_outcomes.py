"""collect-outcomes: what opted-in users' posts did 48 hours after posting, scraped from TikTok.

First the job links unlinked analyses to their creators' recently scraped videos by caption
(`virtuna.outcomes.linking.auto_link`; no network). Then it takes every linked analysis whose
user opted in (`users.outcome_consent`), that has no outcome yet, and whose video is at least
48 hours old, and scrapes those videos with one Apify run of APIFY_ACTOR_ID (the clockworks
TikTok scraper, input `postURLs`). The run is polled (no webhook) and its items ingested
through the same mapping as every Apify run, then one outcome per analysis is recorded with
`source = 'scraped'`, the scrape time and the video's age then.

An outcome is never recorded twice: a second run (concurrent or later) gets the unique
analysis_id's OutcomeConflictError and counts it as already recorded. A video the scraper
does not return, or that turns out to be under 48 hours old, is reported and left for the
next run. An Apify failure (an error after retries, a run that fails or does not finish in
time) is a warning and stores no outcome. Without APIFY_TOKEN the job links but skips the
scrape. A dry run shows the links it would make and the analyses that would be due, and links,
scrapes and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, ApifyRun, client_from_settings
from virtuna.ingest.apify_runs import RunIngest, ingest_pending_runs, ingest_run, record_apify_run
from virtuna.jobs import writes
from virtuna.log import get_logger, stage
from virtuna.outcomes.linking import MatchDecision, auto_link, id_posted_at
from virtuna.service.outcomes import derive_outcome
from virtuna.store import connect, run, transaction, utcnow
from virtuna.store.outcomes import OutcomeConflictError, OutcomeReport, record_outcome

log = get_logger(__name__)

MIN_AGE = timedelta(hours=48)
SKIP_REASON = "APIFY_TOKEN not configured"
RUN_KIND = "outcome"
DRY_RUN_REASON = "dry run: nothing linked, scraped or recorded"


@dataclass(frozen=True)
class Due:
    """A linked analysis whose outcome is wanted."""

    analysis_id: str
    user_id: str
    video_id: str
    url: str
    posted_at: datetime | None  # scraped createTime if known, else the id's creation time


@dataclass
class CollectResult:
    """What the job did: the links it made, and what happened to each due analysis."""

    status: str  # done, degraded, skipped, dry-run
    reason: str | None = None
    links: list[MatchDecision] = field(default_factory=list)
    due: list[str] = field(default_factory=list)  # analyses scraped for
    not_yet: list[str] = field(default_factory=list)  # linked, younger than 48 h
    deferred: list[str] = field(default_factory=list)  # due, over max_videos: next run
    recorded: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # another run recorded it first
    missing: list[tuple[str, str]] = field(default_factory=list)  # (analysis, why): next run
    run_id: str | None = None
    caught_up: list[RunIngest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def linked_pending(con: duckdb.DuckDBPyConnection) -> list[Due]:
    """Opted-in users' linked analyses without an outcome, oldest link first."""
    rows = run(
        con,
        "SELECT a.id, a.user_id, a.posted_video_id, a.posted_url, v.posted_at "
        "FROM analysis_results a JOIN users u ON u.id = a.user_id "
        "LEFT JOIN scraped_videos v ON v.platform = 'tiktok' "
        "AND v.platform_video_id = a.posted_video_id "
        "WHERE u.outcome_consent AND a.posted_video_id IS NOT NULL AND a.deleted_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.analysis_id = a.id) "
        "ORDER BY a.linked_at, a.id",
    )
    return [
        Due(str(a), str(u), str(v), str(url), posted or id_posted_at(str(v)))  # type: ignore[arg-type]
        for a, u, v, url, posted in rows
    ]


def collect_outcomes(
    *,
    max_videos: int = 100,
    wait_s: float = 300.0,
    poll_s: float = 5.0,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: ApifyClient | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool = False,
) -> CollectResult:
    """The collect-outcomes job."""
    if max_videos < 1:
        raise ValueError(f"max_videos must be at least 1, got {max_videos}")
    settings = settings or get_settings()
    with stage("collect-outcomes") as current:
        now = now or utcnow()
        # A dry run links inside a transaction it rolls back; a real run links each analysis on
        # its own, as its user may link one meanwhile.
        with connect(db_path) as con, writes(con, dry_run=True) if dry_run else nullcontext():
            links = auto_link(con, now=now).decisions
            pending = linked_pending(con)
        result = CollectResult("done", links=links)
        due = []
        for item in pending:
            if item.posted_at is not None and now - item.posted_at >= MIN_AGE:
                due.append(item)
            else:
                result.not_yet.append(item.analysis_id)
        videos = list(dict.fromkeys(d.video_id for d in due))[:max_videos]
        result.deferred = [d.analysis_id for d in due if d.video_id not in videos]
        due = [d for d in due if d.video_id in videos]
        result.due = [d.analysis_id for d in due]
        client = client or client_from_settings(settings)
        if client is None:
            log.warning("collect-outcomes skipped", reason=SKIP_REASON, due=len(due))
            result.status, result.reason = "skipped", SKIP_REASON
            return result
        if dry_run:
            client.close()
            result.status, result.reason = "dry-run", DRY_RUN_REASON
            return result
        with client:
            result.caught_up = ingest_pending_runs(client, db_path=db_path)
            if due:
                finished = _scrape(client, due, settings, result, wait_s, poll_s, sleep, db_path)
                if finished is not None:
                    _record(due, finished, result, db_path)
        current.fields.update(
            linked=len([d for d in links if d.status == "linked"]),
            due=len(due),
            recorded=len(result.recorded),
            missing=len(result.missing),
        )
    return result


def _degrade(result: CollectResult, message: str, **fields: object) -> None:
    log.warning("collect-outcomes degraded", problem=message, **fields)
    result.status = "degraded"
    result.warnings.append(message)


def _scrape(
    client: ApifyClient,
    due: list[Due],
    settings: Settings,
    result: CollectResult,
    wait_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
    db_path: Path | str | None,
) -> ApifyRun | None:
    """Run the scraper over the due videos and ingest its items; the run, or None on failure."""
    urls = list(dict.fromkeys(d.url for d in due))
    try:
        started = client.start_run(
            settings.apify_actor_id, {"postURLs": urls, "resultsPerPage": len(urls)}
        )
        record_apify_run(started, kind=RUN_KIND, db_path=db_path)
        result.run_id = started.id
        deadline = time.monotonic() + wait_s
        current = started
        while not current.is_terminal and time.monotonic() < deadline:
            sleep(poll_s)
            current = client.get_run(started.id)
        if not current.is_terminal:
            _degrade(result, f"Apify run {started.id} still {current.status} after {wait_s:g} s")
            return None
        ingested = ingest_run(client, started.id, db_path=db_path)
    except Exception as exc:  # an Apify or ingest failure: nothing recorded this time
        _degrade(result, f"scrape failed: {type(exc).__name__}: {exc}")
        return None
    if ingested.outcome not in ("ingested", "duplicate"):
        _degrade(result, f"Apify run {started.id} ended {ingested.state}; nothing collected")
        return None
    return current


def _record(
    due: list[Due], finished: ApifyRun, result: CollectResult, db_path: Path | str | None
) -> None:
    """One outcome per due analysis from the run's items; the rest are reported missing."""
    with connect(db_path) as con:
        rows = run(
            con,
            "SELECT platform_video_id, views, likes, shares, comments, posted_at, scraped_at "
            "FROM scraped_videos WHERE platform = 'tiktok' AND source_ref = ? "
            "AND list_contains(?, platform_video_id)",
            [finished.id, [d.video_id for d in due]],
        )
        scraped = {str(r[0]): r[1:] for r in rows}
        for item in due:
            found = scraped.get(item.video_id)
            if found is None:
                _missing(result, item, "the scraper did not return the video")
                continue
            views, likes, shares, comments, posted_at, scraped_at = found
            scraped_at = scraped_at or finished.finished_at or utcnow()
            if views is None or posted_at is None:
                _missing(result, item, "the scraped video has no view count or post time")
                continue
            age = scraped_at - posted_at  # type: ignore[operator]
            if age < MIN_AGE:
                _missing(result, item, f"the video was {age.total_seconds() / 3600:.1f} h old")
                continue
            report = OutcomeReport(
                analysis_id=item.analysis_id,
                actual_views=views,  # type: ignore[arg-type]
                actual_likes=likes,  # type: ignore[arg-type]
                actual_shares=shares,  # type: ignore[arg-type]
                actual_comments=comments,  # type: ignore[arg-type]
                platform="tiktok",
                platform_post_url=item.url,  # type: ignore[arg-type]
            )
            try:
                with transaction(con):
                    row = record_outcome(
                        con,
                        report,
                        user_id=item.user_id,
                        derived=derive_outcome(report),
                        source="scraped",
                    )
                    run(
                        con,
                        "UPDATE outcomes SET scraped_at = ?, video_age_hours = ? WHERE id = ?",
                        [scraped_at, round(age.total_seconds() / 3600, 2), row["id"]],
                    )
            # Another run got in first: the unique analysis_id refused this one (at the insert,
            # or at commit).
            except (OutcomeConflictError, duckdb.TransactionException):
                result.already.append(item.analysis_id)
            else:
                result.recorded.append(item.analysis_id)
    if result.missing:
        log.warning(
            "outcomes not collected yet; retried next run",
            count=len(result.missing),
            analyses=[a for a, _ in result.missing][:20],
        )


def _missing(result: CollectResult, item: Due, why: str) -> None:
    result.missing.append((item.analysis_id, why))


def recent_scraped_outcomes(con: duckdb.DuckDBPyConnection, limit: int = 20) -> Any:
    """The newest `limit` outcomes collected by scraping, as a DataFrame."""
    return con.execute(
        "SELECT analysis_id, actual_views, actual_likes, actual_shares, actual_comments, "
        "predicted_score, platform_post_url, scraped_at, video_age_hours, reported_at "
        "FROM outcomes WHERE source = 'scraped' ORDER BY reported_at DESC LIMIT ?",
        [limit],
    ).df()
