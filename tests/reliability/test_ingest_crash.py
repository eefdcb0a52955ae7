"""Defect: after a crash mid-ingest the run was never finished (issue 11, item 4).

A real process ingesting ~20,000 items from the fake Apify is killed with SIGKILL midway.
While it lives, a delivery of the run is answered non-2xx with Retry-After (Apify comes back
later); once it is dead, the redelivery resumes the ingest. Over the whole run every item read
is inserted, updated or rejected, and no video is stored twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, make_item
from tests.service.conftest import Service, service  # noqa: F401
from virtuna.jobs.scrape_trending import scrape_trending
from virtuna.store import connect
from virtuna.store.scrape_runs import get_scrape_run

ITEMS = 20_000
BOUND_S = 600.0  # generous bound on polls (a loaded 2-core machine); the conditions come true first

WORKER = (
    "import sys\n"
    "from virtuna.ingest.apify import ApifyClient\n"
    "from virtuna.ingest.apify_runs import ingest_run\n"
    "token, base_url, run_id, db = sys.argv[1:5]\n"
    "with ApifyClient(token, base_url=base_url) as client:\n"
    "    ingest_run(client, run_id, db_path=db, page_size=500)\n"
)


def _items() -> list[dict]:
    items = []
    for i in range(ITEMS):
        vid = str(7500000000000000000 + i)
        url = f"https://www.tiktok.com/@chef_ana/video/{vid}"
        items.append(make_item(id=vid, createTime=1700000000 + i, webVideoUrl=url))
    return items


def _poll(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw: {what}")
        time.sleep(0.1)


def _rows(svc: Service, run_id: str) -> int:
    with connect(svc.db_path) as con:
        return int(
            con.execute(
                "SELECT count(*) FROM scraped_videos WHERE source_ref = ?", [run_id]
            ).fetchone()[0]
        )


@pytest.mark.slow
def test_killed_ingest_is_resumed_by_the_redelivery(service: Service) -> None:  # noqa: F811
    started = scrape_trending(
        db_path=service.db_path, settings=service.settings, client=service.client()
    )
    run_id = started.run_id
    assert run_id
    service.apify.finish_run(run_id, _items())
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            service.apify.token,
            service.apify.base_url,
            run_id,
            str(service.db_path),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO), "VIRTUNA_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _poll(lambda: _rows(service, run_id) > 0, "the worker's first rows")
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        # The worker is alive and holds the claim: Apify must come back later.
        busy = service.apify.deliver_webhook(run_id)
        assert busy.status_code in (409, 503), busy.text
        assert float(busy.headers["Retry-After"]) > 0
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=BOUND_S)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    partial = _rows(service, run_id)
    assert 0 < partial < ITEMS

    redelivery = service.apify.deliver_webhook(run_id)
    assert redelivery.status_code == 200, redelivery.text
    assert redelivery.json()["status"] == "accepted" and redelivery.json()["resumed"] is True

    def finished() -> bool:
        with connect(service.db_path) as con:
            run = get_scrape_run(con, run_id)
        return run is not None and run.ingested_at is not None

    _poll(finished, "the resumed ingest finishing")
    with connect(service.db_path) as con:
        read, inserted, updated, rejected = con.execute(
            "SELECT item_count, inserted, updated, rejected FROM scrape_runs WHERE run_id = ?",
            [run_id],
        ).fetchone()
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT platform_video_id) FROM scraped_videos "
            "WHERE source_ref = ?",
            [run_id],
        ).fetchone()
    assert read == ITEMS
    assert read == inserted + updated + rejected
    assert updated >= partial  # the rows stored before the crash were read again
    assert rows == distinct == ITEMS - rejected
    done = service.apify.deliver_webhook(run_id)
    assert done.status_code == 200 and done.json()["status"] == "duplicate"
