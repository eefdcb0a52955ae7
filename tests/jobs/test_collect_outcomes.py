"""collect-outcomes: who is collected, when, exactly once, and what an Apify failure leaves."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.apify import FakeApify
from tests.service.test_outcome_loop import _posted_item
from virtuna.config import load_settings
from virtuna.jobs.collect_outcomes import collect_outcomes
from virtuna.store import connect, run, utcnow
from virtuna.store.users import create_user, set_outcome_consent

VIDEO = "7300000000000000101"


def _linked(db_path: Path, *, consent: bool = True, video: str = VIDEO) -> str:
    """A user's analysis linked by URL to video; returns the analysis id."""
    analysis_id = str(uuid.uuid4())
    with connect(db_path) as con:
        user_id, _ = create_user(con, f"user-{analysis_id[:8]}", "pro")
        set_outcome_consent(con, user_id, consent)
        run(
            con,
            "INSERT INTO analysis_results (id, user_id, input_mode, overall_score, confidence, "
            "confidence_label, created_at, posted_video_id, posted_url, linked_at, link_method) "
            "VALUES (?, ?, 'text', 40, 0.5, 'LOW', ?, ?, ?, ?, 'url')",
            [
                analysis_id,
                user_id,
                utcnow(),
                video,
                f"https://www.tiktok.com/@chef_ana/video/{video}",
                utcnow(),
            ],
        )
    return analysis_id


def _collect(fake: FakeApify, db_path: Path, **kw: object):
    settings = load_settings(apify_token=fake.token)
    return collect_outcomes(
        db_path=db_path, settings=settings, client=fake.client(), poll_s=0, **kw
    )


def _outcomes(db_path: Path) -> list[tuple[object, ...]]:
    with connect(db_path) as con:
        return run(con, "SELECT analysis_id, actual_views, source FROM outcomes ORDER BY 1")


def _answer(posted: datetime, views: int = 5000):
    return lambda actor, run_input: (
        [_posted_item(VIDEO, posted, "Posted caption", views)],
        "SUCCEEDED",
    )


@pytest.fixture
def fake() -> FakeApify:
    with FakeApify() as apify:
        yield apify


def _now_minus(hours: float) -> datetime:
    # The id's own time is only a first guess; what counts is the scraped createTime.
    return utcnow() - timedelta(hours=hours)


def test_consent_off_collects_nothing_and_scrapes_nothing(fake: FakeApify, db_path: Path) -> None:
    _linked(db_path, consent=False)
    fake.finish_runs_with(_answer(_now_minus(60)))
    result = _collect(fake, db_path)
    assert result.due == [] and result.recorded == [] and fake.runs == {}
    assert _outcomes(db_path) == []


def test_a_video_younger_than_48_hours_is_not_yet_collected(fake: FakeApify, db_path: Path) -> None:
    analysis = _linked(db_path)
    fake.finish_runs_with(_answer(_now_minus(47)))
    # By the id's time (2023) the video looks old; the scrape says it is 47 h old.
    result = _collect(fake, db_path)
    assert result.recorded == [] and result.missing == [(analysis, "the video was 47.0 h old")]
    assert _outcomes(db_path) == []
    # Now its post time is known: the next run waits without asking Apify again.
    runs = len(fake.runs)
    again = _collect(fake, db_path)
    assert again.not_yet == [analysis] and again.due == [] and len(fake.runs) == runs


def test_a_linked_video_known_to_be_recent_is_not_scraped(fake: FakeApify, db_path: Path) -> None:
    recent_id = str(int((utcnow() - datetime(1970, 1, 1)).total_seconds()) << 32)
    analysis = _linked(db_path, video=recent_id)
    result = _collect(fake, db_path)
    assert result.not_yet == [analysis] and fake.runs == {}


def test_concurrent_runs_record_one_outcome(fake: FakeApify, tmp_path: Path) -> None:
    db_path = tmp_path / "s.duckdb"
    analysis = _linked(db_path)
    fake.finish_runs_with(_answer(_now_minus(50)))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_collect(fake, db_path))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(len(r.recorded) for r in results) == 1
    assert _outcomes(db_path) == [(analysis, 5000, "scraped")]
    assert _collect(fake, db_path).due == []  # and later runs do not ask again


def test_a_video_the_scraper_does_not_return_waits_for_the_next_run(
    fake: FakeApify, db_path: Path
) -> None:
    analysis = _linked(db_path)
    fake.finish_runs_with(lambda actor, run_input: ([], "SUCCEEDED"))
    result = _collect(fake, db_path)
    assert result.missing == [(analysis, "the scraper did not return the video")]
    assert _outcomes(db_path) == []
    fake.finish_runs_with(_answer(_now_minus(50)))
    assert _collect(fake, db_path).recorded == [analysis]


@pytest.mark.parametrize("failure", ["5xx", "failed-run", "never-finishes"])
def test_apify_failures_degrade_and_store_nothing(
    failure: str, fake: FakeApify, db_path: Path
) -> None:
    analysis = _linked(db_path)
    if failure == "5xx":
        fake.fail_next("/v2/acts/", 503, times=10)
    elif failure == "failed-run":
        fake.finish_runs_with(lambda actor, run_input: ([], "FAILED"))
    result = _collect(fake, db_path, wait_s=0.2)
    assert result.status == "degraded" and result.warnings, result
    assert result.recorded == [] and _outcomes(db_path) == []
    fake.heal()
    fake.finish_runs_with(_answer(_now_minus(50)))
    assert _collect(fake, db_path).recorded == [analysis]  # the next run makes up for it


def test_without_apify_it_links_but_skips_the_scrape(db_path: Path) -> None:
    _linked(db_path)
    result = collect_outcomes(db_path=db_path, settings=load_settings())
    assert (result.status, result.reason) == ("skipped", "APIFY_TOKEN not configured")
    assert len(result.due) == 1 and _outcomes(db_path) == []


def test_a_dry_run_shows_what_is_due_and_scrapes_nothing(fake: FakeApify, db_path: Path) -> None:
    analysis = _linked(db_path)
    fake.finish_runs_with(_answer(_now_minus(60)))
    result = _collect(fake, db_path, dry_run=True)
    assert (result.status, result.due) == ("dry-run", [analysis])
    assert fake.runs == {} and _outcomes(db_path) == []
