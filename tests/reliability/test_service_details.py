"""Smaller service defects: unknown LLM costs, keep-alive after a 500, Allow, WWW-Authenticate,
the profile scrape limit, and cost_cents on every pipeline stage line."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.fakes.llm import FakeDeepSeek, FakeGemini, valid_gemini_analysis
from tests.reliability.service_harness import ADMIN_TOKEN, DRAFT, bearer, harness
from virtuna import log as vlog
from virtuna.config import load_settings
from virtuna.service import admin


def test_a_reply_without_usage_is_stored_as_unknown_cost_and_counted(tmp_path: Path) -> None:
    with FakeGemini() as gemini, FakeDeepSeek() as deepseek:
        gemini.ok(valid_gemini_analysis(), omit_usage=True)
        api = harness(tmp_path, gemini, deepseek)
        _, key = api.user("finn", "pro")
        (analysed,) = api.send(
            [{"method": "POST", "url": "/api/analyze", "json": DRAFT, "headers": bearer(key)}]
        )
    assert analysed.status_code == 200, analysed.text
    costs = dict(api.rows("SELECT provider, cost_cents FROM llm_calls WHERE provider = 'gemini'"))
    assert costs == {"gemini": None}  # unknown, not 0
    known = api.rows(
        "SELECT count(*) FROM llm_calls WHERE provider = 'deepseek' AND cost_cents > 0"
    )
    assert known[0][0] >= 1
    (report,) = api.send(
        [{"method": "GET", "url": "/api/admin/costs", "headers": bearer(ADMIN_TOKEN)}]
    )
    body = report.json()
    assert body["calls_without_usage"] == 1
    by_model = {row["model"]: row for row in body["data"]}
    assert by_model["gemini-2.5-flash"]["calls_without_usage"] == 1
    assert by_model["gemini-2.5-flash"]["cost_cents"] == "0.000000"  # the known part only
    assert by_model["deepseek-reasoner"]["calls_without_usage"] == 0


class _CrashingEngine:
    async def analyze(self, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    async def aclose(self) -> None:
        """Nothing to close."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The app (its engine crashing) under a real uvicorn on 127.0.0.1."""
    api = harness(tmp_path, engine=_CrashingEngine())
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:  # polls the server's own flag; no timing is asserted
        time.sleep(0.01)
    try:
        yield url, api
    finally:
        server.should_exit = True
        thread.join(10)


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


def test_a_500_keeps_the_connection_alive(served: tuple[str, Any]) -> None:
    url, api = served
    _, key = api.user("gus", "pro")
    with httpx.Client(base_url=url) as client:
        before = client.get("/healthz")
        crashed = client.post("/api/analyze", json=DRAFT, headers=bearer(key))
        after = client.get("/healthz")
        ports = [_local_port(r) for r in (before, crashed, after)]
    assert crashed.status_code == 500 and crashed.json() == {"error": "internal server error"}
    assert crashed.headers["X-Request-ID"]
    assert crashed.headers.get("connection", "").lower() != "close"
    assert after.status_code == 200
    assert ports[0] == ports[1] == ports[2]  # one connection served all three


def test_405_says_allow_and_401_says_www_authenticate(tmp_path: Path) -> None:
    api = harness(tmp_path)
    _, key = api.user("hal", "free")
    wrong_method, no_key, bad_key, bad_admin, no_admin = api.send(
        [
            {"method": "DELETE", "url": "/api/outcomes", "headers": bearer(key)},
            {"method": "GET", "url": "/api/outcomes"},
            {"method": "GET", "url": "/api/outcomes", "headers": bearer("vk_nope")},
            {"method": "GET", "url": "/api/jobs", "headers": bearer("wrong")},
            {"method": "GET", "url": "/api/jobs"},
        ]
    )
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert wrong_method.headers["Allow"] == "GET, POST"  # both routes on the path
    for response in (no_key, bad_key, bad_admin, no_admin):
        assert response.status_code == 401 and "error" in response.json()
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="virtuna"')
    assert 'error="invalid_token"' in bad_key.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in bad_admin.headers["WWW-Authenticate"]
    assert "error=" not in no_key.headers["WWW-Authenticate"]


def test_profile_scrapes_are_limited_per_user_per_day_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(
        admin, "request_profile_scrape_in_background", lambda handle, **_: started.append(handle)
    )
    api = harness(tmp_path, profile_scrapes_per_day=2)
    ivy_id, ivy = api.user("ivy", "pro")
    _, jon = api.user("jon", "free")

    def patch(key: str, handle: str) -> dict[str, Any]:
        return {
            "method": "PATCH",
            "url": "/api/profile",
            "json": {"creator_handle": handle},
            "headers": bearer(key),
        }

    responses = api.send([patch(ivy, f"creator_{i}") for i in range(10)] + [patch(jon, "jon_c")])
    assert Counter(r.status_code for r in responses[:10]) == {202: 2, 429: 8}
    limited = next(r for r in responses if r.status_code == 429).json()
    assert limited["error"] == "daily profile scrape limit reached" and limited["limit"] == 2
    assert responses[10].status_code == 202  # another user has their own allowance
    assert len(started) == 3 and "jon_c" in started  # only accepted requests start a scrape
    assert api.rows("SELECT profile_scrape_count FROM usage_daily WHERE user_id = ?", [ivy_id]) == [
        (2,)
    ]


def test_every_pipeline_stage_line_has_request_id_stage_duration_and_cost(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    vlog.configure_logging(load_settings(virtuna_env="production"), stream=stream)
    try:
        with FakeGemini() as gemini, FakeDeepSeek() as deepseek:
            api = harness(tmp_path, gemini, deepseek)
            _, key = api.user("kim", "pro")
            (response,) = api.send(
                [
                    {
                        "method": "POST",
                        "url": "/api/analyze",
                        "json": DRAFT,
                        "headers": {**bearer(key), "X-Request-ID": "req-obs-04"},
                    }
                ]
            )
    finally:
        vlog.reset_logging()
    assert response.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    stages = [line for line in lines if line.get("logger") == vlog.STAGE_LOGGER]
    names = {line["stage"] for line in stages}
    assert {"validate", "normalize", "gemini_analysis", "rule_loading", "store_result"} <= names
    for line in stages:
        assert line["request_id"] == "req-obs-04", line
        assert isinstance(line["duration_ms"], float), line
        assert isinstance(line["cost_cents"], float) and line["cost_cents"] >= 0, line
    spent = {line["stage"]: line["cost_cents"] for line in stages}
    assert spent["gemini_analysis"] > 0 and spent["validate"] == 0.0
