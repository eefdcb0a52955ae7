"""The user and admin API through httpx against the app: auth, analyze, outcomes, admin, jobs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from virtuna.config import load_settings
from virtuna.service import create_app
from virtuna.store import connect, run, utcnow
from virtuna.store.creators import get_creator
from virtuna.store.outcomes import Derived, OutcomeReport, record_outcome
from virtuna.store.users import create_user, get_usage, increment_usage, user_for_key

ADMIN_TOKEN = "admin-test-7c1d"
DRAFT = {"content_text": "POV: the one editing trick nobody tells you #fyp #editing"}


@dataclass
class Api:
    """An app on a temp store, two users and a recorder of started jobs."""

    db_path: Path
    app: Any
    alice: str
    alice_id: str
    bob: str
    bob_id: str
    jobs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def call(self, fn: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
        """Run fn with an httpx client bound to the app."""

        async def main() -> Any:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await fn(client)

        return asyncio.run(main())

    def request(self, method: str, url: str, key: str | None = None, **kw: Any) -> httpx.Response:
        """One request, with `Authorization: Bearer key` when key is given."""
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.call(lambda c: c.request(method, url, headers=headers, **kw))  # type: ignore[no-any-return]


def _make_api(tmp_path: Path, *, admin_token: str | None = ADMIN_TOKEN) -> Api:
    db_path = tmp_path / "api.duckdb"
    settings = load_settings(
        admin_token=admin_token, apify_token=None, gemini_api_key=None, deepseek_api_key=None
    )
    with connect(db_path) as con:
        alice_id, alice = create_user(con, "alice", "free")
        bob_id, bob = create_user(con, "bob", "pro")
    jobs: list[tuple[str, dict[str, Any]]] = []

    def job_runner(name: str, parameters: dict[str, Any], *, db_path: object) -> None:
        jobs.append((name, parameters))

    app = create_app(settings, db_path=db_path, job_runner=job_runner)
    return Api(db_path, app, alice, alice_id, bob, bob_id, jobs)


@pytest.fixture
def api(tmp_path: Path) -> Api:
    """The app with ADMIN_TOKEN set, alice (free) and bob (pro)."""
    return _make_api(tmp_path)


def _insert_analysis(api: Api, user_id: str, score: float = 50.0) -> str:
    analysis_id = str(uuid.uuid4())
    with connect(api.db_path) as con:
        run(
            con,
            "INSERT INTO analysis_results (id, user_id, input_mode, overall_score, confidence, "
            "confidence_label, created_at) VALUES (?, ?, 'text', ?, 0.5, 'LOW', ?)",
            [analysis_id, user_id, score, utcnow()],
        )
    return analysis_id


# --------------------------------------------------------------------------- users store


def test_users_store_keys_hashed_and_usage_counts(tmp_path: Path) -> None:
    with connect(tmp_path / "u.duckdb") as con:
        user_id, key = create_user(con, "carol", "starter")
        assert key.startswith("vk_") and len(key) > 40
        stored = run(con, "SELECT key_hash, prefix FROM api_keys WHERE user_id = ?", [user_id])
        assert key not in str(stored) and stored[0][1] == key[:10]
        user = user_for_key(con, key)
        assert user is not None and user.id == user_id and user.tier == "starter"
        assert user_for_key(con, key + "x") is None and user_for_key(con, "") is None
        assert get_usage(con, user_id) == 0
        assert increment_usage(con, user_id) == 1 and increment_usage(con, user_id) == 2
        assert get_usage(con, user_id) == 2
        with pytest.raises(ValueError):
            create_user(con, "dave", "gold")


# --------------------------------------------------------------------------- analyze


def test_analyze_json_stores_with_user_and_request_id(api: Api) -> None:
    response = api.request(
        "POST", "/api/analyze", api.alice, json=DRAFT, headers={"X-Request-ID": "req-abc-1"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["X-Request-ID"] == "req-abc-1" and body["request_id"] == "req-abc-1"
    assert 0 <= body["overall_score"] <= 100
    with connect(api.db_path) as con:
        owner = run(con, "SELECT user_id FROM analysis_results WHERE id = ?", [body["analysis_id"]])
        assert owner == [(api.alice_id,)]
        assert get_usage(con, api.alice_id) == 1


def test_request_id_is_made_when_missing(api: Api) -> None:
    response = api.request("GET", "/healthz")
    assert response.status_code == 200 and len(response.headers["X-Request-ID"]) >= 8


def test_analyze_sse_phase_then_complete(api: Api) -> None:
    response = api.request(
        "POST", "/api/analyze", api.alice, json=DRAFT, headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in response.text.strip().split("\n\n")]
    assert events[0] == ["event: phase", 'data: {"phase": "analyzing"}']
    assert events[1][0] == "event: complete"
    result = json.loads(events[1][1].removeprefix("data: "))
    assert "overall_score" in result and result["analysis_id"]


def test_analyze_sse_invalid_input_is_422_before_the_stream(api: Api) -> None:
    response = api.request(
        "POST",
        "/api/analyze",
        api.alice,
        json={"content_text": "short"},
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["content_text"]


def test_analyze_validation_422_names_fields(api: Api) -> None:
    response = api.request("POST", "/api/analyze", api.alice, json={"content_text": "short"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["content_text"]
    response = api.request(
        "POST",
        "/api/analyze",
        api.alice,
        content=b"not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422 and "error" in response.json()


def test_free_daily_limit_five_then_429_and_422_does_not_count(api: Api) -> None:
    bad = api.request("POST", "/api/analyze", api.alice, json={"content_text": "tiny"})
    assert bad.status_code == 422
    with connect(api.db_path) as con:
        assert get_usage(con, api.alice_id) == 0
    for _ in range(5):
        assert api.request("POST", "/api/analyze", api.alice, json=DRAFT).status_code == 200
    limited = api.request("POST", "/api/analyze", api.alice, json=DRAFT)
    assert limited.status_code == 429
    body = limited.json()
    assert body["error"] == "daily limit reached" and body["limit"] == 5
    assert body["tier"] == "free"
    resets = datetime.fromisoformat(body["resets_at"].removesuffix("Z"))
    assert resets.time() == datetime.min.time() and resets.date() == utcnow().date() + timedelta(1)
    with connect(api.db_path) as con:
        assert get_usage(con, api.alice_id) == 5
    # pro is unlimited
    with connect(api.db_path) as con:
        for _ in range(60):
            increment_usage(con, api.bob_id)
    assert api.request("POST", "/api/analyze", api.bob, json=DRAFT).status_code == 200


# --------------------------------------------------------------------------- outcomes


def test_outcome_report_201_404_409_422(api: Api) -> None:
    analysis = api.request("POST", "/api/analyze", api.alice, json=DRAFT).json()["analysis_id"]
    report = {"analysis_id": analysis, "actual_views": 12000, "actual_score": 82.5}
    created = api.request("POST", "/api/outcomes", api.alice, json=report)
    assert created.status_code == 201, created.text
    row = created.json()
    assert row["analysis_id"] == analysis and row["actual_tier"] == 5
    assert row["user_id"] == api.alice_id and isinstance(row["reported_at"], str)
    again = api.request("POST", "/api/outcomes", api.alice, json=report)
    assert again.status_code == 409 and "error" in again.json()
    unknown = api.request("POST", "/api/outcomes", api.alice, json={"analysis_id": "nope"})
    assert unknown.status_code == 404 and "error" in unknown.json()
    invalid = api.request(
        "POST",
        "/api/outcomes",
        api.alice,
        json={"analysis_id": analysis, "actual_views": -1, "actual_score": 101},
    )
    assert invalid.status_code == 422
    assert {f["field"] for f in invalid.json()["fields"]} == {"actual_views", "actual_score"}


def test_outcomes_list_newest_first_with_cursor(api: Api) -> None:
    base = utcnow() - timedelta(hours=1)
    with connect(api.db_path) as con:
        ids = []
        for i in range(5):
            analysis = _insert_analysis(api, api.alice_id)
            row = record_outcome(
                con,
                OutcomeReport(analysis_id=analysis, actual_views=i),
                user_id=api.alice_id,
                derived=Derived(None, None),
                reported_at=base + timedelta(minutes=i // 2),
            )
            ids.append(row["id"])
        other = _insert_analysis(api, api.bob_id)
        record_outcome(
            con, OutcomeReport(analysis_id=other), user_id=api.bob_id, derived=Derived(None, None)
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.request("GET", "/api/outcomes", api.alice, params=params).json()
        pages += 1
        seen += [item["id"] for item in page["data"]]
        assert all(item["user_id"] == api.alice_id for item in page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert pages == 3 and sorted(seen) == sorted(ids) and len(set(seen)) == 5
    views = [
        api.request("GET", "/api/outcomes", api.alice, params={"limit": 100}).json()["data"][i][
            "actual_views"
        ]
        for i in (0, 4)
    ]
    assert views[0] in (4, 5) and views[1] in (0, 1)
    assert (
        api.request("GET", "/api/outcomes", api.alice, params={"cursor": "!!bad"}).status_code
        == 400
    )
    assert api.request("GET", "/api/outcomes", api.alice, params={"limit": 0}).status_code == 422


# --------------------------------------------------------------------------- profile


def test_profile_saves_handle_and_starts_scrape(api: Api) -> None:
    response = api.request("PATCH", "/api/profile", api.alice, json={"creator_handle": "@Some.One"})
    assert response.status_code == 202 and response.json()["creator_handle"] == "some.one"
    with connect(api.db_path) as con:
        assert run(con, "SELECT creator_handle FROM users WHERE id = ?", [api.alice_id]) == [
            ("some.one",)
        ]
    deadline = time.monotonic() + 10
    while True:  # the background scrape records that Apify is not configured
        with connect(api.db_path) as con:
            creator = get_creator(con, "some.one")
        if creator is not None and creator.scrape_status == "not-configured":
            break
        assert time.monotonic() < deadline, "the profile scrape never started"
        time.sleep(0.05)
    bad = api.request("PATCH", "/api/profile", api.alice, json={"creator_handle": "no spaces!"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "creator_handle"
    missing = api.request("PATCH", "/api/profile", api.alice, json={})
    assert missing.status_code == 422


# --------------------------------------------------------------------------- admin


def test_admin_costs_exact_per_day_and_model(api: Api) -> None:
    now = utcnow()
    calls = [
        (now, "gemini", "gemini-2.5-flash", "0.012345"),
        (now, "gemini", "gemini-2.5-flash", "0.000001"),
        (now, "deepseek", "deepseek-chat", "1.5"),
        (now, "anthropic", "claude-haiku-5-5", "0.0725"),
        (now - timedelta(days=1), "gemini", "gemini-2.5-flash", "2.25"),
        (now - timedelta(days=40), "gemini", "gemini-2.5-flash", "9"),
    ]
    with connect(api.db_path) as con:
        for created, provider, model, cents in calls:
            run(
                con,
                "INSERT INTO llm_calls (id, provider, model, cost_cents, status, created_at) "
                "VALUES (?, ?, ?, ?, 'ok', ?)",
                [str(uuid.uuid4()), provider, model, cents, created],
            )
    body = api.request("GET", "/api/admin/costs", ADMIN_TOKEN).json()
    rows = [(r["date"], r["provider"], r["model"], r["cost_cents"]) for r in body["data"]]
    today, yesterday = str(now.date()), str((now - timedelta(days=1)).date())
    assert rows == [
        (today, "anthropic", "claude-haiku-5-5", "0.072500"),
        (today, "deepseek", "deepseek-chat", "1.500000"),
        (today, "gemini", "gemini-2.5-flash", "0.012346"),
        (yesterday, "gemini", "gemini-2.5-flash", "2.250000"),
    ]
    assert (
        len(
            api.request("GET", "/api/admin/costs", ADMIN_TOKEN, params={"days": 365}).json()["data"]
        )
        == 5
    )
    for bad in ("0", "366", "abc"):
        response = api.request("GET", "/api/admin/costs", ADMIN_TOKEN, params={"days": bad})
        assert response.status_code == 400 and "error" in response.json()


def test_admin_calibration_report(api: Api) -> None:
    url = "/api/admin/calibration-report"
    with connect(api.db_path) as con:
        for i in range(12):
            score = 10.0 + i * 7
            analysis = _insert_analysis(api, api.alice_id, score)
            record_outcome(
                con,
                OutcomeReport(analysis_id=analysis),
                user_id=api.alice_id,
                derived=Derived(None, 5 if i >= 6 else 2),
            )
        old = _insert_analysis(api, api.alice_id)
        record_outcome(
            con,
            OutcomeReport(analysis_id=old),
            user_id=api.alice_id,
            derived=Derived(None, 5),
            reported_at=utcnow() - timedelta(days=60),
        )
    body = api.request("GET", url, ADMIN_TOKEN).json()
    assert body["status"] == "ok" and body["outcomes"] == 12 and len(body["bins"]) == 10
    assert sum(b["count"] for b in body["bins"]) == 12 and 0 <= body["ece"] <= 1
    assert body["resonated_rate"] == 0.5
    few = api.request("GET", url, ADMIN_TOKEN, params={"days": 1})
    assert few.status_code == 200 and few.json()["outcomes"] == 12
    assert api.request("GET", url, ADMIN_TOKEN, params={"days": 400}).status_code == 400


def test_admin_calibration_report_not_enough_outcomes(api: Api) -> None:
    with connect(api.db_path) as con:
        for _ in range(3):
            analysis = _insert_analysis(api, api.alice_id)
            record_outcome(
                con,
                OutcomeReport(analysis_id=analysis),
                user_id=api.alice_id,
                derived=Derived(None, 4),
            )
    body = api.request("GET", "/api/admin/calibration-report", ADMIN_TOKEN).json()
    assert body["status"] == "not enough outcomes" and body["outcomes"] == 3
    assert body["ece"] is None and body["min_outcomes"] == 10


def test_admin_jobs_start_and_list(api: Api) -> None:
    started = api.request("POST", "/api/jobs/calculate-trends", ADMIN_TOKEN)
    assert started.status_code == 202
    assert started.json() == {"status": "started", "job": "calculate-trends"}
    assert api.jobs == [("calculate-trends", {})]
    unknown = api.request("POST", "/api/jobs/no-such-job", ADMIN_TOKEN)
    assert unknown.status_code == 404 and "error" in unknown.json()
    with connect(api.db_path) as con:
        for i in range(55):
            run(
                con,
                "INSERT INTO job_runs (id, job, status, parameters, started_at) "
                "VALUES (?, 'calculate-trends', 'succeeded', ?, ?)",
                [f"run{i:02d}", json.dumps({"i": i}), utcnow() - timedelta(minutes=i)],
            )
    data = api.request("GET", "/api/jobs", ADMIN_TOKEN).json()["data"]
    assert len(data) == 50 and data[0]["id"] == "run00" and data[0]["parameters"] == {"i": 0}


def test_admin_routes_503_without_admin_token(tmp_path: Path) -> None:
    api = _make_api(tmp_path, admin_token=None)
    response = api.request("GET", "/api/jobs", "anything")
    assert response.status_code == 503 and "ADMIN_TOKEN" in response.json()["error"]


# --------------------------------------------------------------------------- authorization


USER_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/api/analyze", DRAFT),
    ("POST", "/api/outcomes", "ALICE_ANALYSIS"),
    ("GET", "/api/outcomes", None),
    ("PATCH", "/api/profile", {"creator_handle": "alice_creates"}),
]
ADMIN_ROUTES: list[tuple[str, str]] = [
    ("GET", "/api/admin/costs"),
    ("GET", "/api/admin/calibration-report"),
    ("POST", "/api/jobs/calculate-trends"),
    ("GET", "/api/jobs"),
]
SUCCESS = {
    "POST /api/analyze": 200,
    "POST /api/outcomes": 201,
    "GET /api/outcomes": 200,
    "PATCH /api/profile": 202,
}


def test_authorization_matrix_user_routes(api: Api) -> None:
    for method, url, body in USER_ROUTES:
        payload = body
        if body == "ALICE_ANALYSIS":
            payload = {"analysis_id": _insert_analysis(api, api.alice_id)}
        for key, expected in (
            (None, 401),
            ("vk_wrong-key", 401),
            (ADMIN_TOKEN, 401),
            (api.alice, SUCCESS[f"{method} {url}"]),
        ):
            response = api.request(method, url, key, json=payload)
            assert response.status_code == expected, (method, url, key, response.text)
            assert response.headers["X-Request-ID"]
            if expected == 401:
                assert "error" in response.json()
        if body == "ALICE_ANALYSIS":  # another user's analysis is not found
            other = {"analysis_id": _insert_analysis(api, api.alice_id)}
            response = api.request(method, url, api.bob, json=other)
            assert response.status_code == 404, response.text
    # another user's outcomes are not listed
    listed = api.request("GET", "/api/outcomes", api.bob).json()
    assert listed["data"] == [] and listed["has_more"] is False
    wrong_scheme = api.request("GET", "/api/outcomes", headers={"Authorization": api.alice})
    assert wrong_scheme.status_code == 401


def test_authorization_matrix_admin_routes(api: Api) -> None:
    for method, url in ADMIN_ROUTES:
        for key, expected in (
            (None, 401),
            ("wrong-token", 401),
            (api.bob, 401),
            (ADMIN_TOKEN, 202 if method == "POST" else 200),
        ):
            response = api.request(method, url, key)
            assert response.status_code == expected, (method, url, key, response.text)
            if expected == 401:
                assert "error" in response.json()
    assert api.jobs == [("calculate-trends", {})]


def test_cli_users_create_prints_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from virtuna.cli import main

    db = tmp_path / "cli.duckdb"
    assert main(["--db", str(db), "users", "create", "eve", "--tier", "starter"]) == 0
    key = capsys.readouterr().out.strip().split()[-1]
    with connect(db) as con:
        user = user_for_key(con, key)
    assert user is not None and user.name == "eve" and user.tier == "starter"
    assert main(["--db", str(db), "users", "create", "eve", "--tier", "pro"]) != 0
