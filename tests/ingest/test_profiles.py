"""Creator profile scrapes: started on request, ingested by webhook or poll, never raised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_item
from tests.fakes.apify import FakeApify
from virtuna.config import load_settings
from virtuna.ingest.apify_runs import PROFILE_ACTOR_ID, ingest_run
from virtuna.ingest.profiles import (
    request_profile_scrape,
    request_profile_scrape_in_background,
    wait_and_ingest,
)
from virtuna.jobs.refresh_competitors import refresh_competitors
from virtuna.store import connect
from virtuna.store.creators import get_creator, track_creator


@pytest.fixture
def apify() -> Iterator[FakeApify]:
    with FakeApify() as fake:
        yield fake


def _settings(fake: FakeApify):
    return load_settings(
        apify_token=fake.token, apify_webhook_secret="s", public_base_url="http://h"
    )


def _profile_items(handle: str, fans: int) -> list[dict]:
    author = {
        "id": "99",
        "name": handle,
        "nickName": "Ana",
        "verified": True,
        "fans": fans,
        "heart": 5000,
        "video": 12,
        "signature": "cooking every day",
    }
    return [make_item(id=str(i), authorMeta=author) for i in range(3)]


def test_request_tracks_the_creator_and_starts_the_profile_actor(
    apify: FakeApify, db_path: Path
) -> None:
    request = request_profile_scrape(
        "@Chef_Ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    assert (request.handle, request.status) == ("chef_ana", "running")
    (start,) = apify.requests_to("/v2/acts/", "POST")
    assert start.path == f"/v2/acts/{PROFILE_ACTOR_ID}/runs"
    assert start.json["profiles"] == ["chef_ana"]
    with connect(db_path) as con:
        creator = get_creator(con, "chef_ana")
    assert creator is not None and creator.tracked and creator.scrape_status == "running"


def test_ingesting_the_profile_run_fills_the_creator_videos_and_a_snapshot(
    apify: FakeApify, db_path: Path
) -> None:
    request = request_profile_scrape(
        "chef_ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    apify.finish_run(request.run_id or "", _profile_items("chef_ana", 12_345))
    result = ingest_run(apify.client(), request.run_id or "", db_path=db_path)
    assert (result.outcome, result.inserted) == ("ingested", 3)
    with connect(db_path) as con:
        creator = get_creator(con, "chef_ana")
        snapshots = con.execute("SELECT handle, followers FROM creator_snapshots").fetchall()
    assert creator is not None
    assert (creator.followers, creator.hearts, creator.videos, creator.verified) == (
        12_345,
        5000,
        12,
        True,
    )
    assert creator.bio == "cooking every day" and creator.scrape_status == "succeeded"
    assert snapshots == [("chef_ana", 12_345)]


def test_a_failed_start_is_recorded_on_the_creator_not_raised(
    apify: FakeApify, db_path: Path
) -> None:
    apify.fail_next("/v2/acts/", 500, times=1)
    request = request_profile_scrape(
        "chef_ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    assert request.status == "failed" and "500" in (request.error or "")
    assert len(apify.requests_to("/v2/acts/", "POST")) == 1  # a start is never retried blindly
    with connect(db_path) as con:
        creator = get_creator(con, "chef_ana")
    assert creator is not None and creator.scrape_status == "failed"
    assert "500" in (creator.last_error or "")


def test_a_failed_profile_run_marks_the_creator(apify: FakeApify, db_path: Path) -> None:
    request = request_profile_scrape(
        "chef_ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    apify.finish_run(request.run_id or "", [], status="FAILED")
    assert ingest_run(apify.client(), request.run_id or "", db_path=db_path).outcome == (
        "not-succeeded"
    )
    with connect(db_path) as con:
        creator = get_creator(con, "chef_ana")
    assert creator is not None and creator.scrape_status == "failed"


def test_without_a_token_the_request_says_so(db_path: Path) -> None:
    request = request_profile_scrape("chef_ana", db_path=db_path, settings=load_settings())
    assert request.status == "not-configured"


def test_a_bad_handle_is_the_callers_error(db_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid"):
        request_profile_scrape("no spaces allowed", db_path=db_path)
    with pytest.raises(ValueError, match="not valid"):
        request_profile_scrape_in_background("x")


def test_background_request_returns_at_once(apify: FakeApify, db_path: Path) -> None:
    apify.delay_next("/v2/acts/", 1.0)
    thread = request_profile_scrape_in_background(
        "chef_ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    assert thread.is_alive()  # the caller did not wait for Apify
    thread.join(10)
    with connect(db_path) as con:
        creator = get_creator(con, "chef_ana")
    assert creator is not None and creator.scrape_status == "running"


def test_wait_and_ingest_polls_until_the_run_ends(apify: FakeApify, db_path: Path) -> None:
    request = request_profile_scrape(
        "chef_ana", db_path=db_path, settings=_settings(apify), client=apify.client()
    )
    apify.finish_run(request.run_id or "", _profile_items("chef_ana", 10))
    result = wait_and_ingest(apify.client(), request.run_id or "", db_path=db_path, poll_s=0)
    assert result.outcome == "ingested"


def test_refresh_competitors_rescrapes_every_tracked_creator(
    apify: FakeApify, db_path: Path
) -> None:
    with connect(db_path) as con:
        track_creator(con, "ana")
        track_creator(con, "ben")
    result = refresh_competitors(db_path=db_path, settings=_settings(apify), client=apify.client())
    assert result.status == "done"
    assert sorted(r.handle for r in result.requests) == ["ana", "ben"]
    assert len(apify.requests_to(f"/v2/acts/{PROFILE_ACTOR_ID}/runs", "POST")) == 2


def test_refresh_competitors_without_a_token_is_skipped(db_path: Path) -> None:
    assert refresh_competitors(db_path=db_path, settings=load_settings()).status == "skipped"
