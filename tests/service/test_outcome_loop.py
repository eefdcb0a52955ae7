"""The outcome loop over HTTP: analyse, post, link (by URL and by matching), collect, audit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.conftest import make_item
from tests.service.conftest import Service
from virtuna.ingest.profiles import request_profile_scrape
from virtuna.jobs.collect_outcomes import collect_outcomes
from virtuna.store import connect, utcnow
from virtuna.store.outcomes import outcome_frame
from virtuna.store.users import create_user

CAPTION = "Wait for it... the secret to crispy rice every single time #cooking #fyp"
POSTED_ID = "7300000000000000101"
MATCHED_ID = "7300000000000000202"


def _posted_item(video_id: str, posted: datetime, text: str, views: int) -> dict[str, Any]:
    """The clockworks item of a video posted at `posted` (UTC)."""
    return make_item(
        id=video_id,
        text=text,
        createTime=int((posted - datetime(1970, 1, 1)).total_seconds()),
        createTimeISO=posted.isoformat(timespec="milliseconds") + "Z",
        webVideoUrl=f"https://www.tiktok.com/@chef_ana/video/{video_id}",
        playCount=views,
        diggCount=views // 20,
        shareCount=views // 500,
        commentCount=views // 300,
    )


def test_analyse_post_link_collect_and_audit_end_to_end(service: Service) -> None:
    with connect(service.db_path) as con:
        _, key = create_user(con, "ana", "pro")
    auth = {"Authorization": f"Bearer {key}"}
    http = httpx.Client(base_url=service.url, headers=auth, timeout=30)
    posted = utcnow() - timedelta(hours=50)

    answer = http.patch("/api/profile", json={"outcome_consent": True})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "accepted", "outcome_consent": True}

    # Two drafts analysed before posting.
    linked_by_url = http.post(
        "/api/analyze", json={"content_text": "A different draft, linked by hand"}
    )
    matched = http.post(
        "/api/analyze",
        json={
            "content_text": CAPTION,
            "creator_handle": "chef_ana",
            "planned_post_time": posted.isoformat(),
        },
    )
    assert linked_by_url.status_code == matched.status_code == 200, matched.text
    by_url_id, matched_id = linked_by_url.json()["analysis_id"], matched.json()["analysis_id"]

    # "Posting": the creator's profile scrape (as refresh-competitors starts it) brings the
    # matched video in through the webhook.
    profile = request_profile_scrape(
        "chef_ana", db_path=service.db_path, settings=service.settings, client=service.client()
    )
    assert profile.status == "running" and profile.run_id
    profile_run = profile.run_id
    service.apify.finish_run(profile_run, [_posted_item(MATCHED_ID, posted, CAPTION, 90_000)])
    assert service.apify.deliver_webhook(profile_run).status_code == 200
    service.wait_for(
        lambda: (
            service.scalar(
                "SELECT count(*) FROM scraped_videos WHERE platform_video_id = ?", [MATCHED_ID]
            )
            == 1
        )
    )

    # Linking by URL (a share query string is dropped).
    url = f"https://www.tiktok.com/@chef_ana/video/{POSTED_ID}?is_from_webapp=1&sender_device=pc"
    link = http.patch(f"/api/analyses/{by_url_id}", json={"posted_url": url})
    assert link.status_code == 200, link.text
    assert link.json()["posted_video_id"] == POSTED_ID and link.json()["link_method"] == "url"
    assert link.json()["posted_url"] == f"https://www.tiktok.com/@chef_ana/video/{POSTED_ID}"

    # Collecting: the scraper returns both videos, 50 hours old.
    service.apify.finish_runs_with(
        lambda actor, run_input: (
            [
                _posted_item(POSTED_ID, posted, "A different draft, posted", 12_000),
                _posted_item(MATCHED_ID, posted, CAPTION, 95_000),
            ],
            "SUCCEEDED",
        )
    )
    # The threshold a tier model would have stored with each analysis (this store has none).
    with connect(service.db_path) as con:
        con.execute("UPDATE analysis_results SET resonates_at_views = 50000")
    result = collect_outcomes(
        db_path=service.db_path, settings=service.settings, client=service.client(), poll_s=0
    )
    assert result.status == "done", result.warnings
    assert [(d.analysis_id, d.status, d.video_id) for d in result.links] == [
        (matched_id, "linked", MATCHED_ID)
    ]
    assert sorted(result.recorded) == sorted([by_url_id, matched_id]) and not result.missing
    start = service.apify.requests_to("/v2/acts/clockworks~tiktok-scraper/runs", "POST")[-1]
    assert sorted(start.json["postURLs"]) == sorted(
        f"https://www.tiktok.com/@chef_ana/video/{v}" for v in (POSTED_ID, MATCHED_ID)
    )

    # The outcomes, as the user and as the calibration audit see them.
    listed = {o["analysis_id"]: o for o in http.get("/api/outcomes").json()["data"]}
    assert (
        listed[matched_id]["actual_views"] == 95_000 and listed[matched_id]["source"] == "scraped"
    )
    assert listed[by_url_id]["actual_views"] == 12_000
    with connect(service.db_path) as con:
        ages = con.execute(
            "SELECT video_age_hours, scraped_at FROM outcomes WHERE analysis_id = ?", [matched_id]
        ).fetchall()
        seen = outcome_frame(con).set_index("analysis_id")["resonated"].to_dict()
    assert 49.9 < ages[0][0] < 51 and ages[0][1] is not None
    assert seen == {by_url_id: False, matched_id: True}  # 12,000 and 95,000 views against 50,000

    # A second run scrapes nothing and records nothing again.
    runs_before = len(service.apify.runs)
    again = collect_outcomes(
        db_path=service.db_path, settings=service.settings, client=service.client(), poll_s=0
    )
    assert again.recorded == [] and again.due == [] and len(service.apify.runs) == runs_before
    assert service.scalar("SELECT count(*) FROM outcomes") == 2


def test_linking_refuses_hostile_urls_others_analyses_and_relinks(service: Service) -> None:
    with connect(service.db_path) as con:
        _, key = create_user(con, "ana", "pro")
        _, other_key = create_user(con, "ben", "pro")
    http = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"})
    analysis = http.post(
        "/api/analyze", json={"content_text": CAPTION, "creator_handle": "chef_ana"}
    ).json()["analysis_id"]
    path = f"/api/analyses/{analysis}"
    hostile = {
        "https://vm.tiktok.com/ZMabc123/": "short TikTok links",
        "http://www.tiktok.com/@chef_ana/video/7300000000000000101": "must be a TikTok video URL",
        "https://www.tiktok.com.evil.example/@chef_ana/video/1": "must be a TikTok video URL",
        "https://www.tiktok.com/@chef_ana/video/73000abc": "must be a TikTok video URL",
        "https://www.tiktok.com/@chef_ana/video/1#<script>": "must be a TikTok video URL",
        "https://www.tiktok.com/@chef_ana/video/99999999999999999999": "no TikTok video has",
        "https://www.tiktok.com/@someone_else/video/7300000000000000101": "@chef_ana's draft",
        "javascript:alert(1)": "must be a TikTok video URL",
    }
    for url, message in hostile.items():
        response = http.patch(path, json={"posted_url": url})
        assert response.status_code == 422, (url, response.text)
        assert message in response.json()["fields"][0]["message"], (url, response.text)
    too_long = "https://www.tiktok.com/@chef_ana/video/1?" + "a" * 600
    assert http.patch(path, json={"posted_url": too_long}).status_code == 422
    assert http.patch(path, json={"posted_url": "x", "extra": 1}).status_code == 422

    good = "https://www.tiktok.com/@chef_ana/video/7300000000000000101"
    other = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {other_key}"})
    assert other.patch(path, json={"posted_url": good}).status_code == 404
    assert http.patch("/api/analyses/no-such-id", json={"posted_url": good}).status_code == 404
    assert http.patch(path, json={"posted_url": good}).status_code == 200
    assert http.patch(path, json={"posted_url": good}).status_code == 200  # same video: no change
    conflict = http.patch(path, json={"posted_url": good.replace("101", "102")})
    assert conflict.status_code == 409 and "already linked" in conflict.json()["error"]
    assert httpx.patch(f"{service.url}{path}", json={"posted_url": good}).status_code == 401
