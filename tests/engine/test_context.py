"""Creator context, trend enrichment and the calibration baseline, read from a store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import make_item
from virtuna.engine.baseline import (
    FALLBACK_BASELINE,
    CalibrationBaseline,
    compute_baseline,
    load_baseline,
    save_baseline,
)
from virtuna.engine.creator import FALLBACK_PLATFORM, creator_context
from virtuna.engine.trends import enrich_with_trends
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.jobs.calculate_trends import calculate_trends
from virtuna.store import connect

T0 = datetime(2024, 5, 1, 12, 0, 0)


def _post(
    n: int,
    hours_before: float,
    *,
    handle: str = "ana",
    views: int = 1000,
    likes: int = 100,
    sound: tuple[str, str] = ("s1", "Night Trouble"),
    text: str = "#dance",
    fans: int = 500,
):
    posted = T0 - timedelta(hours=hours_before)
    return make_item(
        id=str(n),
        text=text,
        createTime=int(posted.replace(tzinfo=UTC).timestamp()),
        playCount=views,
        diggCount=likes,
        commentCount=10,
        shareCount=5,
        authorMeta={"name": handle, "fans": fans, "heart": 9, "video": 3},
        musicMeta={"musicId": sound[0], "musicName": sound[1], "musicOriginal": False},
    )


def _store(db: Path, items: list[dict]) -> None:
    with connect(db) as con:
        store_batch(
            con,
            map_items([json.dumps(i) for i in items], source="apify", source_ref="t"),
            source="apify",
            source_ref="t",
        )


def test_creator_context_counts_only_posts_before_the_moment(db_path: Path) -> None:
    _store(db_path, [_post(1, 30, views=100), _post(2, 20, views=300), _post(3, -5, views=10**6)])
    with connect(db_path) as con:
        context = creator_context(con, "ana", T0)
    assert context.found and context.earlier_posts == 2
    assert context.median_views == 200.0
    assert context.followers == 500
    assert context.engagement_rate == pytest.approx(((100 + 15) / 100 + (100 + 15) / 300) / 2)
    assert "Earlier posts in our data: 2" in context.describe()


def test_unknown_creator_and_empty_store_use_fallback_platform(db_path: Path) -> None:
    with connect(db_path) as con:
        context = creator_context(con, "nobody", T0)
    assert not context.found and context.platform == FALLBACK_PLATFORM
    assert "unknown" in context.describe()


def test_trend_enrichment_matches_sounds_and_hashtags_as_of_the_moment(db_path: Path) -> None:
    _store(
        db_path,
        [_post(i, 2 + i, handle=f"u{i}", text="#nighttrouble #fyp", views=50_000) for i in range(6)]
        + [_post(10, 3, handle="x", text="#cats", sound=("s2", "Other Song"))],
    )
    calculate_trends(T0, 48, db_path=str(db_path))
    with connect(db_path) as con:
        hit = enrich_with_trends(
            con,
            "POV: night trouble again #nighttrouble #fyp",
            ["nighttrouble", "fyp"],
            T0 + timedelta(hours=1),
        )
        miss = enrich_with_trends(con, "a quiet morning walk", [], T0 + timedelta(hours=1))
        before = enrich_with_trends(con, "night trouble", [], T0 - timedelta(days=3))
    assert hit.available and [s["sound_name"] for s in hit.matched_sounds] == ["Night Trouble"]
    assert {t["hashtag"]: t["saturated"] for t in hit.hashtags} == {
        "nighttrouble": True,
        "fyp": True,
    }  # both on over 40 % of the window's posts
    assert hit.trend_score is not None and hit.trend_score > 0
    assert "Night Trouble" in hit.context
    assert miss.available and miss.trend_score == 0.0 and not miss.matched_sounds
    assert not before.available and before.trend_score is None  # no snapshot yet at that time


def test_baseline_round_trip_and_fallbacks(tmp_path: Path, db_path: Path) -> None:
    _store(db_path, [_post(i, i, views=1000 + i, likes=50 + i) for i in range(40)])
    with connect(db_path) as con:
        baseline = compute_baseline(con)
    assert baseline.video_count == 40 and not baseline.is_fallback
    assert "save_rate" not in baseline.fallback_fields  # the items carry collectCount
    path = save_baseline(baseline, tmp_path / "b.json")
    assert load_baseline(path) == baseline
    assert load_baseline(tmp_path / "missing.json") is FALLBACK_BASELINE
    (tmp_path / "bad.json").write_text('{"video_count": "many"}', encoding="utf-8")
    assert load_baseline(tmp_path / "bad.json") is FALLBACK_BASELINE
    assert FALLBACK_BASELINE.weighted_engagement.p90 < 1  # fractions, not a 0-100 scale


def test_baseline_needs_data(db_path: Path) -> None:
    with connect(db_path) as con, pytest.raises(ValueError, match="ingest data"):
        compute_baseline(con)


def test_baseline_schema_rejects_negative_rates() -> None:
    data = FALLBACK_BASELINE.model_dump()
    data["share_rate"]["p50"] = -1
    with pytest.raises(ValueError):
        CalibrationBaseline.model_validate(data)
