"""scrape-trending: hashtags, the run it starts, staleness, catching up lost runs, skipping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_item
from tests.fakes.apify import FakeApify
from virtuna.config import load_settings
from virtuna.ingest import ingest_file
from virtuna.ingest.apify_runs import ingest_pending_runs, record_apify_run
from virtuna.jobs.scrape_trending import DEFAULT_HASHTAGS, scrape_trending
from virtuna.store import connect
from virtuna.store.scrape_runs import get_scrape_run


@pytest.fixture
def apify() -> Iterator[FakeApify]:
    with FakeApify() as fake:
        yield fake


def _settings(fake: FakeApify, **extra: object):
    return load_settings(
        apify_token=fake.token,
        apify_webhook_secret="s3cret-value",
        public_base_url="https://virtuna.example",
        **extra,
    )


def test_starts_the_actor_with_default_hashtags_and_a_webhook(
    apify: FakeApify, db_path: Path
) -> None:
    result = scrape_trending(db_path=db_path, settings=_settings(apify), client=apify.client())
    assert result.status == "started"
    assert result.hashtags == list(DEFAULT_HASHTAGS) and len(result.hashtags) == 14
    (start,) = apify.requests_to("/v2/acts/", "POST")
    assert start.path == "/v2/acts/clockworks~tiktok-scraper/runs"
    assert start.json == {"hashtags": list(DEFAULT_HASHTAGS), "resultsPerPage": 100}
    hooks = json.loads(base64.b64decode(start.query["webhooks"]))
    assert hooks[0]["requestUrl"] == "https://virtuna.example/api/webhooks/apify"
    assert set(hooks[0]["eventTypes"]) >= {"ACTOR.RUN.SUCCEEDED", "ACTOR.RUN.FAILED"}
    assert "s3cret-value" in hooks[0]["headersTemplate"]
    with connect(db_path) as con:
        run = get_scrape_run(con, result.run_id or "")
    assert run is not None and run.state == "RUNNING" and run.hashtags == list(DEFAULT_HASHTAGS)


def test_scraper_hashtags_setting_is_cleaned(apify: FakeApify, db_path: Path) -> None:
    settings = _settings(apify, scraper_hashtags=" #Cooking, FYP ,cooking,")
    result = scrape_trending(db_path=db_path, settings=settings, client=apify.client())
    assert result.hashtags == ["cooking", "fyp"]


def test_without_a_token_it_is_skipped_not_failed(db_path: Path) -> None:
    result = scrape_trending(db_path=db_path, settings=load_settings())
    assert (result.status, result.reason) == ("skipped", "APIFY_TOKEN not configured")
    assert result.stale  # an empty store has nothing fresh


def test_staleness_follows_the_newest_arrival(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "fresh.jsonl"
    path.write_text(json.dumps(make_item()) + "\n", encoding="utf-8")
    ingest_file(path, db_path=db_path)  # arrived just now
    assert not scrape_trending(db_path=db_path, settings=load_settings()).stale


def test_runs_whose_delivery_was_lost_are_caught_up(apify: FakeApify, db_path: Path) -> None:
    client = apify.client()
    lost = client.start_run("clockworks~tiktok-scraper", {"hashtags": ["x"]})
    record_apify_run(lost, db_path=db_path)
    apify.finish_run(lost.id, [make_item(id="41"), make_item(id="42")])
    result = scrape_trending(db_path=db_path, settings=_settings(apify), client=apify.client())
    assert [(r.run_id, r.outcome, r.inserted) for r in result.caught_up] == [
        (lost.id, "ingested", 2)
    ]
    again = ingest_pending_runs(apify.client(), db_path=db_path)
    assert [r.outcome for r in again] == ["not-succeeded"]  # only the new, still-running run


def test_a_dry_run_starts_records_and_catches_up_nothing(apify: FakeApify, db_path: Path) -> None:
    result = scrape_trending(
        db_path=db_path, settings=_settings(apify), client=apify.client(), dry_run=True
    )
    assert result.status == "dry-run" and result.hashtags == list(DEFAULT_HASHTAGS)
    assert apify.requests_to("/v2/", "POST") == [] and apify.requests_to("/v2/", "GET") == []
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM scrape_runs").fetchall() == [(0,)]
