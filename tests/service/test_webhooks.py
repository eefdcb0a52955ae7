"""The Apify webhook end to end: fake Apify on 127.0.0.1 delivers to the running service."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import RAW, make_item
from tests.service.conftest import WEBHOOK_SECRET, Service
from virtuna.ingest.apify import WEBHOOK_SECRET_HEADER
from virtuna.jobs.calculate_trends import calculate_trends
from virtuna.jobs.scrape_trending import scrape_trending
from virtuna.store import connect
from virtuna.store.scrape_runs import get_scrape_run


def _real_items(n: int) -> list[dict]:
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


def _start(service: Service) -> str:
    result = scrape_trending(
        db_path=service.db_path, settings=service.settings, client=service.client()
    )
    assert result.status == "started" and result.run_id
    return result.run_id


def _ingested(service: Service, run_id: str) -> bool:
    with connect(service.db_path) as con:
        run = get_scrape_run(con, run_id)
    return run is not None and run.ingested_at is not None


def _videos(service: Service) -> int:
    return int(service.scalar("SELECT count(*) FROM scraped_videos"))  # type: ignore[arg-type]


def test_scrape_webhook_ingest_and_trends_end_to_end(service: Service) -> None:
    run_id = _start(service)
    with connect(service.db_path) as con:
        started = get_scrape_run(con, run_id)
    assert started is not None and started.kind == "trending" and "fyp" in (started.hashtags or [])

    items = _real_items(40)
    service.apify.finish_run(run_id, items)
    response = service.apify.deliver_webhook(run_id)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "run_id": run_id, "state": "SUCCEEDED"}
    service.wait_for(lambda: _ingested(service, run_id))

    assert _videos(service) == 40
    assert (
        service.scalar(
            "SELECT count(DISTINCT source_ref) FROM scraped_videos WHERE source_ref = ?", [run_id]
        )
        == 1
    )
    assert service.scalar("SELECT count(*) FROM scraped_videos WHERE scraped_at IS NULL") == 0
    trends = calculate_trends("2023-11-01T00:00:00", 24 * 365 * 5, db_path=str(service.db_path))
    assert trends.sounds > 0
    assert service.scalar("SELECT count(*) FROM trending_sounds") == trends.sounds


def test_ten_deliveries_of_one_run_store_its_videos_once(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, _real_items(15))
    service.apify.deliver_webhook(run_id)
    service.wait_for(lambda: _ingested(service, run_id))
    answers = [service.apify.deliver_webhook(run_id).json()["status"] for _ in range(9)]
    assert set(answers) == {"duplicate"}
    assert _videos(service) == 15
    assert service.scalar("SELECT count(*) FROM scrape_runs") == 1
    assert service.scalar("SELECT inserted FROM scrape_runs") == 15


def test_a_wrong_or_missing_secret_gets_401_and_writes_nothing(service: Service) -> None:
    run_id = service.apify.create_run()
    service.apify.finish_run(run_id, _real_items(3))
    payload = service.apify.webhook_payload(run_id)
    url = f"{service.url}/api/webhooks/apify"
    wrong = httpx.post(url, json=payload, headers={WEBHOOK_SECRET_HEADER: "guess"})
    missing = httpx.post(url, json=payload)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json() == {"error": "webhook secret missing or wrong"}
    assert service.scalar("SELECT count(*) FROM scrape_runs") == 0
    assert _videos(service) == 0
    assert not service.apify.requests_to(f"/v2/actor-runs/{run_id}")  # not even looked up


def test_a_run_that_succeeded_with_no_items_is_suspect(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, [])
    service.apify.deliver_webhook(run_id)
    service.wait_for(lambda: _ingested(service, run_id))
    assert service.scalar("SELECT suspect FROM scrape_runs WHERE run_id = ?", [run_id]) is True


def test_a_500_on_the_dataset_then_success_still_ingests(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, _real_items(5))
    service.apify.fail_next("/v2/datasets/", 500, times=1)
    service.apify.deliver_webhook(run_id)
    service.wait_for(lambda: _ingested(service, run_id))
    assert _videos(service) == 5
    assert len(service.apify.requests_to("/v2/datasets/")) == 2


def test_a_crash_midway_is_retried_by_the_next_delivery(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, _real_items(5))
    service.apify.fail_next("/v2/datasets/", 500, times=20)  # beyond the client's retries
    service.apify.deliver_webhook(run_id)
    service.wait_for(
        lambda: (
            service.scalar("SELECT error FROM scrape_runs WHERE run_id = ?", [run_id]) is not None
        )
    )
    assert not _ingested(service, run_id)
    service.apify.heal()
    assert service.apify.deliver_webhook(run_id).json()["status"] == "accepted"
    service.wait_for(lambda: _ingested(service, run_id))
    assert _videos(service) == 5


def test_a_malformed_item_is_rejected_and_the_good_ones_kept(service: Service) -> None:
    run_id = _start(service)
    items = [make_item(id="1"), make_item(id="2", playCount="many"), make_item(id="3")]
    service.apify.finish_run(run_id, items)
    service.apify.deliver_webhook(run_id)
    service.wait_for(lambda: _ingested(service, run_id))
    assert _videos(service) == 2
    with connect(service.db_path) as con:
        reject = con.execute(
            "SELECT source, source_ref, position, reason FROM ingest_rejects"
        ).fetchall()
    assert reject == [("apify", run_id, 1, "views: not a number (many)")]


def test_a_failed_run_is_recorded_without_an_ingest(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, [], status="FAILED")
    response = service.apify.deliver_webhook(run_id, "ACTOR.RUN.FAILED")
    assert response.json()["state"] == "FAILED"
    assert service.scalar("SELECT state FROM scrape_runs WHERE run_id = ?", [run_id]) == "FAILED"
    assert not service.apify.requests_to("/v2/datasets/")


def test_the_run_is_verified_with_apify_not_taken_from_the_payload(service: Service) -> None:
    run_id = _start(service)  # still RUNNING at Apify
    payload = service.apify.webhook_payload(run_id)
    payload["resource"]["status"] = "SUCCEEDED"  # a forged payload claims it finished
    response = httpx.post(
        f"{service.url}/api/webhooks/apify",
        json=payload,
        headers={WEBHOOK_SECRET_HEADER: WEBHOOK_SECRET},
    )
    assert response.json()["state"] == "RUNNING"
    assert not service.apify.requests_to("/v2/datasets/")


def test_apify_down_while_verifying_is_a_502_so_apify_retries(service: Service) -> None:
    run_id = _start(service)
    service.apify.finish_run(run_id, _real_items(2))
    service.apify.fail_next(f"/v2/actor-runs/{run_id}", 503, times=10)
    response = service.apify.deliver_webhook(run_id)
    assert response.status_code == 502
    assert "could not verify the run" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"eventType": "ACTOR.RUN.SUCCEEDED"}, 422), ({"nothing": 1}, 422)],
)
def test_a_payload_without_a_run_is_rejected(service: Service, body: dict, status: int) -> None:
    response = httpx.post(
        f"{service.url}/api/webhooks/apify",
        json=body,
        headers={WEBHOOK_SECRET_HEADER: WEBHOOK_SECRET},
    )
    assert response.status_code == status
    assert "error" in response.json()


def test_healthz_reports_the_schema(service: Service) -> None:
    body = httpx.get(f"{service.url}/healthz").json()
    assert body["status"] == "ok" and body["schema_version"] >= 3
