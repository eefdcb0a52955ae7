"""Defect: concurrent duplicate webhook deliveries got 500 (issue 11, items 3 and 9).

The same Apify delivery sent 20 times at once must get 20 answers in 2xx (Apify redelivers
on anything else): one "accepted", every other one "duplicate", and the data stored once.
A delivery for a run Apify does not know is answered 2xx too ("unknown run"), recorded, so
that Apify stops redelivering it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import RAW
from tests.service.conftest import WEBHOOK_SECRET, Service, service  # noqa: F401
from virtuna.ingest.apify import WEBHOOK_SECRET_HEADER
from virtuna.jobs.scrape_trending import scrape_trending
from virtuna.store import connect
from virtuna.store.scrape_runs import get_scrape_run


def _ingested(svc: Service, run_id: str) -> bool:
    with connect(svc.db_path) as con:
        run = get_scrape_run(con, run_id)
    return run is not None and run.ingested_at is not None


def test_twenty_concurrent_deliveries_get_2xx_and_store_once(service: Service) -> None:  # noqa: F811
    started = scrape_trending(
        db_path=service.db_path, settings=service.settings, client=service.client()
    )
    run_id = started.run_id
    assert run_id
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    service.apify.finish_run(run_id, [json.loads(line) for line in lines[:60]])

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: service.apify.deliver_webhook(run_id), range(20)))

    codes = sorted(r.status_code for r in responses)
    assert all(200 <= c < 300 for c in codes), [(r.status_code, r.text) for r in responses]
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("accepted") == 1, statuses
    assert statuses.count("duplicate") == 19, statuses
    service.wait_for(lambda: _ingested(service, run_id))
    assert service.scalar("SELECT count(*) FROM scrape_runs") == 1
    assert service.scalar("SELECT count(*) FROM scraped_videos") == 60
    assert service.scalar("SELECT inserted + updated + rejected FROM scrape_runs") == 60
    # A late redelivery is a duplicate too.
    late = service.apify.deliver_webhook(run_id)
    assert late.status_code == 200 and late.json()["status"] == "duplicate"


def test_a_run_apify_does_not_know_is_answered_2xx_and_recorded(service: Service) -> None:  # noqa: F811
    import httpx

    payload = {
        "eventType": "ACTOR.RUN.SUCCEEDED",
        "eventData": {"actorId": "x", "actorRunId": "NoSuchRun01234567"},
    }
    response = httpx.post(
        f"{service.url}/api/webhooks/apify",
        json=payload,
        headers={WEBHOOK_SECRET_HEADER: WEBHOOK_SECRET},
        timeout=10,
    )
    assert 200 <= response.status_code < 300, response.text
    assert response.json()["status"] == "unknown run"
    with connect(service.db_path) as con:
        run = get_scrape_run(con, "NoSuchRun01234567")
    assert run is not None and run.state == "UNKNOWN" and "404" in (run.error or "")
    # Apify itself failing is still a 502, so the delivery comes again.
    service.apify.fail_next("/v2/actor-runs/", 503, times=20)
    unreachable = httpx.post(
        f"{service.url}/api/webhooks/apify",
        json={**payload, "eventData": {"actorRunId": "AnotherRun0123456"}},
        headers={WEBHOOK_SECRET_HEADER: WEBHOOK_SECRET},
        timeout=30,
    )
    assert unreachable.status_code == 502
