"""Plausible but extreme input is a 422 (or 413 for a huge body), never a 500 or a stored blob."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.service_harness import DRAFT, harness
from virtuna.ingest.apify import WEBHOOK_SECRET_HEADER
from virtuna.store import utcnow

WEBHOOK_SECRET = "whsec-bounds-31c9"


def _api(tmp_path: Path) -> tuple[Any, str, str]:
    api = harness(tmp_path, apify_webhook_secret=WEBHOOK_SECRET, apify_token="apify-bounds-token")
    user_id, key = api.user("dora", "pro")
    analysis_id = str(uuid.uuid4())
    api.rows(
        "INSERT INTO analysis_results (id, user_id, input_mode, overall_score, confidence, "
        "confidence_label, created_at) VALUES (?, ?, 'text', 50, 0.5, 'LOW', ?)",
        [analysis_id, user_id, utcnow()],
    )
    return api, key, analysis_id


def _post(url: str, key: str, **kwargs: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return {"method": "POST", "url": url, "headers": headers, **kwargs}


@pytest.mark.parametrize(
    "planned",
    [
        "0001-01-01T00:30:00+05:00",  # before year 1 in UTC
        "9999-12-31T23:30:00-05:00",  # after year 9999 in UTC
        "1899-06-01T12:00:00Z",
        "2300-06-01T12:00:00",
    ],
)
def test_planned_post_time_out_of_range_is_422(tmp_path: Path, planned: str) -> None:
    api, key, _ = _api(tmp_path)
    (response,) = api.send(
        [_post("/api/analyze", key, json={**DRAFT, "planned_post_time": planned})]
    )
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == ["planned_post_time"]


def test_outcome_fields_are_bounded_and_nothing_is_stored(tmp_path: Path) -> None:
    api, key, analysis_id = _api(tmp_path)
    bad = [
        {"actual_views": 2**63},
        {"actual_views": 10**12 + 1},
        {"actual_likes": 10**30},
        {"platform": "x" * 10_000},
        {"platform": ""},
        {"platform_post_url": "https://example.com/" + "a" * 5000},
    ]
    responses = api.send(
        [_post("/api/outcomes", key, json={"analysis_id": analysis_id, **b}) for b in bad]
        + [_post("/api/outcomes", key, json={"analysis_id": "a" * 10_000})]
        + [
            _post(  # Python's JSON reader takes NaN; a rate must still be a number in range
                "/api/outcomes",
                key,
                content=f'{{"analysis_id": "{analysis_id}", "actual_score": NaN}}'.encode(),
                headers={"Content-Type": "application/json"},
            )
        ]
    )
    assert [r.status_code for r in responses] == [422] * 8, [r.text[:200] for r in responses]
    assert api.rows("SELECT count(*) FROM outcomes") == [(0,)]
    (ok,) = api.send(
        [_post("/api/outcomes", key, json={"analysis_id": analysis_id, "actual_views": 10**12})]
    )
    assert ok.status_code == 201, ok.text


def test_bodies_over_the_cap_are_413_with_a_json_error(tmp_path: Path) -> None:
    api, key, analysis_id = _api(tmp_path)
    huge = "x" * 1_000_000

    async def chunks() -> Any:  # no Content-Length: the cap must count what arrives
        yield b'{"analysis_id": "' + analysis_id.encode() + b'", "platform": "'
        for _ in range(100):
            yield b"y" * 10_000
        yield b'"}'

    responses = api.send(
        [
            _post("/api/outcomes", key, json={"analysis_id": analysis_id, "platform": huge}),
            _post(
                "/api/outcomes", key, content=chunks(), headers={"Content-Type": "application/json"}
            ),
            _post("/api/analyze", key, json={**DRAFT, "niche": huge}),
            {
                "method": "PATCH",
                "url": "/api/profile",
                "json": {"creator_handle": huge},
                "headers": {"Authorization": f"Bearer {key}"},
            },
            _post(
                "/api/webhooks/apify",
                key,
                json={
                    "eventType": "ACTOR.RUN.SUCCEEDED",
                    "eventData": {"actorRunId": "r" * 100_000},
                },
                headers={WEBHOOK_SECRET_HEADER: WEBHOOK_SECRET},
            ),
        ]
    )
    for response in responses:
        assert response.status_code == 413, response.text[:200]
        assert response.json()["error"].startswith("request body too large")
        assert response.headers["X-Request-ID"]
    assert api.rows("SELECT count(*) FROM outcomes") == [(0,)]


def test_long_fields_under_the_cap_are_422(tmp_path: Path) -> None:
    api, key, _ = _api(tmp_path)
    long = "z" * 20_000
    responses = api.send(
        [
            _post("/api/analyze", key, json={**DRAFT, "niche": long}),
            _post("/api/analyze", key, json={**DRAFT, "creator_handle": long}),
            _post("/api/analyze", key, json={**DRAFT, "content_text": "word " * 4000}),
            _post(
                "/api/analyze",
                key,
                json={"input_mode": "video_upload", "video_storage_path": "v/" + long},
            ),
            _post(
                "/api/analyze",
                key,
                json={"input_mode": "tiktok_url", "tiktok_url": "https://www.tiktok.com/" + long},
            ),
            _post("/api/analyze", key, json={**DRAFT, "duration_seconds": 1e308}),
            {
                "method": "PATCH",
                "url": "/api/profile",
                "json": {"creator_handle": long},
                "headers": {"Authorization": f"Bearer {key}"},
            },
        ]
    )
    assert [r.status_code for r in responses] == [422] * 7, [r.text[:200] for r in responses]
    assert api.rows("SELECT count(*) FROM analysis_results") == [(1,)]  # the seeded one only


def test_openapi_documents_the_analyze_body_and_the_bounds(tmp_path: Path) -> None:
    api, _, _ = _api(tmp_path)
    spec = api.app.openapi()
    body = spec["paths"]["/api/analyze"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    analysis = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert analysis["content_text"]["anyOf"][0]["maxLength"] == 10_000
    assert analysis["niche"]["anyOf"][0]["maxLength"] == 100
    for name in ("tiktok_url", "video_storage_path", "creator_handle"):
        assert "maxLength" in analysis[name]["anyOf"][0], name
    assert "2000" in analysis["planned_post_time"]["description"]
    outcome = spec["components"]["schemas"]["OutcomeReport"]["properties"]
    assert outcome["actual_views"]["anyOf"][0]["maximum"] == 10**12
    assert outcome["platform"]["maxLength"] == 32
    assert outcome["analysis_id"]["maxLength"] == 64
    for path, method in (("/api/analyze", "post"), ("/api/outcomes", "post")):
        assert "413" in spec["paths"][path][method]["responses"], path
