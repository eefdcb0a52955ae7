"""Tests for virtuna.ingest.apify against the FakeApify server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import warnings
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from structlog.testing import capture_logs

from tests.conftest import make_item
from tests.fakes import apify as apify_fakes
from tests.fakes.apify import FakeApify
from virtuna.config import load_settings
from virtuna.ingest.apify import (
    DEFAULT_EVENT_TYPES,
    WEBHOOK_SECRET_HEADER,
    ApifyClient,
    ApifyError,
    ApifyRun,
    client_from_settings,
)

ACTOR = "clockworks~tiktok-scraper"
SECRET = "hook-secret-6f1c2a"

fake_apify = apify_fakes.fake_apify  # the fixture, used by name below


class Sleeps(list[float]):
    """An injectable sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        """Record seconds."""
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    """A fresh sleep recorder."""
    return Sleeps()


def _client(fake: FakeApify, sleeps: Sleeps, **kwargs: Any) -> ApifyClient:
    """A client for the fake with recorded sleeps."""
    token = kwargs.pop("token", fake.token)
    return ApifyClient(token, **{"base_url": fake.base_url, "sleep": sleeps, **kwargs})


def _items(n: int) -> list[dict[str, Any]]:
    """n distinct clockworks items."""
    return [make_item(id=str(7300000000000000000 + i)) for i in range(n)]


# --------------------------------------------------------------------------- runs


def test_start_run_sends_input_bearer_and_adhoc_webhook(
    fake_apify: FakeApify, sleeps: Sleeps
) -> None:
    run_input = {"hashtags": ["cooking", "fyp"], "resultsPerPage": 50}
    hook_url = "https://virtuna.example/webhooks/apify"
    with _client(fake_apify, sleeps) as client:
        run = client.start_run(ACTOR, run_input, webhook_url=hook_url, webhook_secret=SECRET)

    [sent] = fake_apify.requests
    assert (sent.method, sent.path) == ("POST", f"/v2/acts/{ACTOR}/runs")
    assert sent.json == run_input
    assert sent.headers["authorization"] == f"Bearer {fake_apify.token}"
    assert sent.headers["content-type"].startswith("application/json")
    assert fake_apify.token not in sent.path + json.dumps(sent.query)
    assert set(sent.query) == {"webhooks"}

    [hook] = json.loads(base64.b64decode(sent.query["webhooks"]))
    assert hook["eventTypes"] == [
        "ACTOR.RUN.SUCCEEDED",
        "ACTOR.RUN.FAILED",
        "ACTOR.RUN.TIMED_OUT",
        "ACTOR.RUN.ABORTED",
    ]
    assert hook["requestUrl"] == hook_url
    assert isinstance(hook["headersTemplate"], str)
    assert json.loads(hook["headersTemplate"]) == {"X-Virtuna-Webhook-Secret": SECRET}
    assert "payloadTemplate" not in hook

    server_run = fake_apify.runs[run.id]
    assert run.status == "RUNNING" and not run.is_terminal and not run.succeeded
    assert run.default_dataset_id == server_run["defaultDatasetId"]
    assert run.act_id == server_run["actId"] == fake_apify.actor_id_for(ACTOR)
    assert isinstance(run.started_at, datetime) and run.started_at.tzinfo is None
    assert run.finished_at is None
    assert run.raw["defaultKeyValueStoreId"] == server_run["defaultKeyValueStoreId"]
    assert fake_apify.run_inputs[run.id] == run_input


def test_start_run_without_webhook_sends_no_webhooks_param(
    fake_apify: FakeApify, sleeps: Sleeps
) -> None:
    with _client(fake_apify, sleeps) as client:
        run = client.start_run("clockworks/tiktok-scraper", {})
    [sent] = fake_apify.requests
    assert sent.path == f"/v2/acts/{ACTOR}/runs"  # user/name is sent as user~name
    assert sent.query == {} and sent.json == {}
    assert fake_apify.webhooks[run.id] == []


def test_get_run_round_trip(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    with _client(fake_apify, sleeps) as client:
        started = client.start_run(ACTOR, {"hashtags": ["x"]})
        fake_apify.finish_run(started.id, _items(3))
        run = client.get_run(started.id)
    assert fake_apify.requests[-1].path == f"/v2/actor-runs/{started.id}"
    assert (run.id, run.status, run.default_dataset_id) == (
        started.id,
        "SUCCEEDED",
        started.default_dataset_id,
    )
    assert run.is_terminal and run.succeeded
    assert run.finished_at is not None and run.started_at is not None
    assert run.finished_at.tzinfo is None and run.finished_at >= run.started_at


def test_get_unknown_run_names_404_and_type(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    with _client(fake_apify, sleeps) as client, pytest.raises(ApifyError) as caught:
        client.get_run("noSuchRun")
    message = str(caught.value)
    assert "404" in message and "record-not-found" in message
    assert "Actor run was not found" in message and "GET /v2/actor-runs/noSuchRun" in message
    assert (caught.value.status, caught.value.error_type) == (404, "record-not-found")
    assert sleeps == [] and len(fake_apify.requests) == 1


def test_run_from_api_parses_apify_times_as_naive_utc() -> None:
    run = ApifyRun.from_api(
        {
            "id": "r1",
            "actId": "a1",
            "status": "TIMED-OUT",
            "defaultDatasetId": "d1",
            "startedAt": "2023-11-18T18:14:52.123Z",
            "finishedAt": "2023-11-18T20:14:52.123+02:00",
        }
    )
    assert run.started_at == datetime(2023, 11, 18, 18, 14, 52, 123000)
    assert run.finished_at == datetime(2023, 11, 18, 18, 14, 52, 123000)
    assert run.is_terminal and not run.succeeded
    with pytest.raises(ApifyError, match="lacks id"):
        ApifyRun.from_api({"status": "RUNNING"})


# --------------------------------------------------------------------------- datasets


def test_dataset_pagination_follows_headers(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    items = _items(25)
    dataset_id = fake_apify.add_dataset(items)
    with _client(fake_apify, sleeps) as client:
        pages = list(client.iter_dataset_items(dataset_id, page_size=10))
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [item["id"] for page in pages for item in page] == [item["id"] for item in items]
    sent = fake_apify.requests_to(f"/v2/datasets/{dataset_id}/items")
    assert [r.query["offset"] for r in sent] == ["0", "10", "20"]
    assert {(r.query["limit"], r.query["clean"], r.query["format"]) for r in sent} == {
        ("10", "true", "json")
    }


def test_dataset_exact_multiple_stops_at_total(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    dataset_id = fake_apify.add_dataset(_items(20))
    with _client(fake_apify, sleeps) as client:
        pages = list(client.iter_dataset_items(dataset_id, page_size=10))
        empty = list(client.iter_dataset_items(fake_apify.add_dataset([]), page_size=10))
    assert [len(page) for page in pages] == [10, 10]
    assert len(fake_apify.requests_to(f"/v2/datasets/{dataset_id}")) == 2  # no third call
    assert empty == []


def test_dataset_of_finished_run_is_read(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    with _client(fake_apify, sleeps) as client:
        run = client.start_run(ACTOR, {})
        fake_apify.finish_run(run.id, [make_item(), {}, {"#debug": 1, "id": "2"}])
        assert run.default_dataset_id is not None
        items = list(client.iter_items(run.default_dataset_id))
    assert items == [make_item(), {"id": "2"}]  # clean=true: no empty items, no '#' fields


def test_server_repeating_full_pages_is_stopped_by_total(sleeps: Sleeps) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params["offset"])
        assert len(calls) <= 5, "the client does not stop"
        headers = {"X-Apify-Pagination-Offset": "0", "X-Apify-Pagination-Total": "30"}
        return httpx.Response(200, json=[{"n": i} for i in range(10)], headers=headers)

    transport = httpx.MockTransport(handler)
    with ApifyClient("t0ken", transport=transport, sleep=sleeps) as client:
        pages = list(client.iter_dataset_items("ds", page_size=10))
    assert len(pages) == 3 and calls == ["0", "10", "20"]


def test_dataset_body_not_an_array_is_an_error(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    dataset_id = fake_apify.add_dataset(_items(2))
    fake_apify.fail_next("/v2/datasets/", 200, body={"data": {"items": []}})
    with _client(fake_apify, sleeps) as client, pytest.raises(ApifyError, match="JSON array"):
        list(client.iter_dataset_items(dataset_id))


def test_unknown_dataset_is_404(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    with _client(fake_apify, sleeps) as client, pytest.raises(ApifyError, match="404"):
        list(client.iter_dataset_items("noSuchDataset"))


# --------------------------------------------------------------------------- retries


def test_500_then_success_retries_once(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    dataset_id = fake_apify.add_dataset(_items(5))
    fake_apify.fail_next(f"/v2/datasets/{dataset_id}", 500)
    with _client(fake_apify, sleeps) as client:
        items = list(client.iter_items(dataset_id))
    assert len(items) == 5
    assert len(fake_apify.requests_to("/v2/datasets/")) == 2
    assert sleeps == [1.0]


def test_429_honours_retry_after(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    dataset_id = fake_apify.add_dataset(_items(1))
    fake_apify.fail_next("/v2/datasets/", 429, retry_after=2)
    fake_apify.fail_next("/v2/datasets/", 503, retry_after=120)
    with _client(fake_apify, sleeps) as client:
        assert len(list(client.iter_items(dataset_id))) == 1
    assert sleeps == [2.0, 30.0]  # Retry-After honoured, each wait capped at 30 s


def test_a_retry_after_shorter_than_the_backoff_waits_the_backoff(
    fake_apify: FakeApify, sleeps: Sleeps
) -> None:
    dataset_id = fake_apify.add_dataset(_items(1))
    fake_apify.fail_next("/v2/datasets/", 503, retry_after=0, times=2)
    with _client(fake_apify, sleeps) as client:
        assert len(list(client.iter_items(dataset_id))) == 1
    assert sleeps == [1.0, 2.0]  # the server's hint is a minimum, never a reason to hurry


def test_500_forever_gives_up_after_max_retries(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    fake_apify.fail_next("/v2/actor-runs/", 500, times=100)
    client = _client(fake_apify, sleeps, max_retries=3, backoff_s=0.5)
    with client, pytest.raises(ApifyError) as caught:
        client.get_run("someRun")
    assert len(fake_apify.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    message = str(caught.value)
    assert "4 attempts" in message and "HTTP 500" in message and "internal-server-error" in message
    assert caught.value.attempts == 4 and caught.value.status == 500


def test_401_fails_at_once(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    client = _client(fake_apify, sleeps, token="wrong-token-1234")
    with client, pytest.raises(ApifyError) as caught:
        client.start_run(ACTOR, {})
    assert len(fake_apify.requests) == 1 and sleeps == []
    assert "401" in str(caught.value) and "token-not-valid" in str(caught.value)
    assert fake_apify.runs == {}


def test_timeout_is_retried(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    dataset_id = fake_apify.add_dataset(_items(3))
    fake_apify.delay_next("/v2/datasets/", 1.0)
    with _client(fake_apify, sleeps, timeout_s=0.2) as client:
        items = list(client.iter_items(dataset_id))
    assert len(items) == 3
    assert len(fake_apify.requests_to("/v2/datasets/")) == 2 and sleeps == [1.0]


def test_connection_refused_is_retried_then_fails(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ApifyClient("t0ken", base_url=f"http://127.0.0.1:{port}", max_retries=2, sleep=sleeps)
    with client, pytest.raises(ApifyError, match=r"ConnectError.*3 attempts"):
        client.get_run("r")
    assert sleeps == [1.0, 2.0]


def test_token_never_in_errors_or_logs(
    fake_apify: FakeApify, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "apify_api_BADtoken_never_to_leak_42"
    echo = {"error": {"type": "internal-server-error", "message": f"bad token {bad}"}}
    fake_apify.fail_next("/v2/actor-runs/", 500, body=echo)
    fake_apify.fail_next("/v2/datasets/", 500, times=10, body=echo)
    errors: list[str] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, _client(fake_apify, sleeps, token=bad, max_retries=1) as client:
        for call in (lambda: client.get_run("r1"), lambda: list(client.iter_items("d1"))):
            with pytest.raises(ApifyError) as caught:
                call()
            errors.append(f"{caught.value} {caught.value!r}")
        errors.append(repr(client))
    retries = [entry for entry in logs if entry["event"] == "apify request retry"]
    assert len(retries) == 2 and retries[0]["log_level"] == "warning"
    assert retries[0]["path"] == "/v2/actor-runs/r1" and retries[0]["status"] == 500
    assert retries[0]["method"] == "GET" and retries[0]["attempt"] == 1
    assert "401" in errors[0] and "[Filtered]" in errors[1]
    everything = "\n".join([*errors, repr(logs), caplog.text])
    assert bad not in everything


def test_client_from_settings(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    assert client_from_settings() is None
    assert client_from_settings(load_settings()) is None
    settings = load_settings(apify_token=fake_apify.token)
    client = client_from_settings(settings, base_url=fake_apify.base_url, sleep=sleeps)
    assert client is not None
    with client:
        run = client.start_run(settings.apify_actor_id, {})
    assert fake_apify.runs[run.id]["actId"] == fake_apify.actor_id_for(ACTOR)


# --------------------------------------------------------------------------- webhooks


def test_deliver_webhook_sends_default_payload_with_secret(
    fake_apify: FakeApify, sleeps: Sleeps
) -> None:
    with _client(fake_apify, sleeps) as client:
        run = client.start_run(ACTOR, {}, webhook_url=fake_apify.sink_url, webhook_secret=SECRET)
    fake_apify.finish_run(run.id, _items(2))
    assert fake_apify.deliver_webhook(run.id).status_code == 200
    assert fake_apify.deliver_webhook(run.id, "ACTOR.RUN.FAILED", secret="wrong").is_success
    first, second = fake_apify.sink
    assert first.headers[WEBHOOK_SECRET_HEADER.lower()] == SECRET
    assert second.headers[WEBHOOK_SECRET_HEADER.lower()] == "wrong"
    payload = first.json
    assert set(payload) == {"userId", "createdAt", "eventType", "eventData", "resource"}
    assert payload["eventType"] == "ACTOR.RUN.SUCCEEDED"
    assert payload["eventData"] == {"actorId": run.act_id, "actorRunId": run.id}
    finished = ApifyRun.from_api(payload["resource"])
    assert finished.succeeded and finished.default_dataset_id == run.default_dataset_id
    assert second.json["eventType"] == "ACTOR.RUN.FAILED"


def test_deliver_webhook_through_a_test_client(fake_apify: FakeApify, sleeps: Sleeps) -> None:
    with warnings.catch_warnings():  # Starlette warns about httpx on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    app = FastAPI()
    seen: list[tuple[str | None, dict[str, Any]]] = []

    @app.post("/webhooks/apify")
    async def receive(request: Request) -> dict[str, bool]:
        seen.append((request.headers.get(WEBHOOK_SECRET_HEADER), await request.json()))
        return {"ok": True}

    with _client(fake_apify, sleeps) as client:
        run = client.start_run(
            ACTOR,
            {},
            webhook_url="http://127.0.0.1:8000/webhooks/apify",
            webhook_secret=SECRET,
            event_types=DEFAULT_EVENT_TYPES[:1],
        )
    with TestClient(app) as test_client:
        assert fake_apify.deliver_webhook(run.id, client=test_client).json() == {"ok": True}
        with pytest.raises(LookupError):
            fake_apify.deliver_webhook(run.id, "ACTOR.RUN.FAILED", client=test_client)
    assert seen[0][0] == SECRET and seen[0][1]["eventData"]["actorRunId"] == run.id
