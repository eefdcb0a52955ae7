"""calculate-trends: windows by post time, growth, velocity, phases, snapshots."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import make_item
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.jobs.calculate_trends import calculate_trends, resolve_as_of, trend_history
from virtuna.store import connect
from virtuna.store.trends import hashtag_trends, snapshot_as_of, top_sounds

AS_OF = datetime(2024, 3, 10, 12, 0, 0)


def _video(
    n: int,
    hours_before: float,
    views: int,
    sound: str | None,
    *,
    original: bool = False,
    text: str = "#dance",
    sound_name: str | None = None,
) -> dict:
    posted = AS_OF - timedelta(hours=hours_before)
    return make_item(
        id=str(n),
        text=text,
        createTime=int(posted.replace(tzinfo=UTC).timestamp()),
        playCount=views,
        musicMeta={
            "musicId": sound,
            "musicName": sound_name or f"song {sound}",
            "musicOriginal": original,
        },
    )


def _store(db: Path, videos: list[dict]) -> None:
    batch = map_items([json.dumps(v) for v in videos], source="apify", source_ref="t")
    assert not batch.rejects
    with connect(db) as con:
        store_batch(con, batch, source="apify", source_ref="t")


def _sounds(db: Path) -> dict[str, dict]:
    with connect(db) as con:
        frame = top_sounds(con, AS_OF, limit=None)
    return {row["sound_key"]: row for row in frame.to_dict("records")}


def test_growth_velocity_and_phase_follow_the_documented_formulas(db_path: Path) -> None:
    _store(
        db_path,
        [
            _video(1, 2, 600, "new"),
            _video(2, 3, 400, "new"),  # only the newer half
            _video(3, 40, 600_000, "fading"),
            _video(4, 5, 100_000, "fading"),
            _video(5, 30, 200_000, "big"),
            _video(6, 10, 300_000, "big"),
        ],
    )
    run = calculate_trends(AS_OF, 48, db_path=str(db_path))
    assert (run.videos_in_window, run.sounds) == (6, 3)
    sounds = _sounds(db_path)

    new = sounds["new"]
    assert (new["video_count"], new["recent_views"], new["older_views"]) == (2, 1000, 0)
    assert new["growth_rate"] == 1.0
    assert new["velocity_score"] == pytest.approx(math.log10(1000) * 2 * 2, abs=1e-3)
    assert new["trend_phase"] == "emerging"

    fading = sounds["fading"]
    assert fading["growth_rate"] == pytest.approx((100_000 - 600_000) / 600_000, abs=1e-4)
    assert fading["trend_phase"] == "declining"  # big, but shrinking faster than -0.2

    big = sounds["big"]
    assert big["growth_rate"] == pytest.approx(0.5)
    assert big["trend_phase"] == "peak"  # >= 500,000 views and growth >= -0.2


def test_the_window_uses_post_time_and_excludes_what_falls_outside(db_path: Path) -> None:
    _store(
        db_path,
        [
            _video(1, 1, 100, "in"),
            _video(2, 49, 100, "too-old"),
            _video(3, -1, 100, "after-as-of"),
        ],
    )
    calculate_trends(AS_OF, 48, db_path=str(db_path))
    assert set(_sounds(db_path)) == {"in"}


def test_original_sound_without_an_id_is_not_a_trend(db_path: Path) -> None:
    _store(
        db_path,
        [
            _video(1, 1, 100, None, original=True, sound_name="original sound"),
            _video(2, 2, 100, None, original=True, sound_name="original sound"),
            _video(3, 3, 100, None, sound_name="Named Track"),
            _video(4, 4, 100, "77", original=True, sound_name="original sound"),
        ],
    )
    calculate_trends(AS_OF, 48, db_path=str(db_path))
    assert set(_sounds(db_path)) == {"named track", "77"}


def test_hashtag_trends_carry_their_share_of_the_window(db_path: Path) -> None:
    _store(
        db_path,
        [
            _video(1, 1, 100, "a", text="#fyp #cats"),
            _video(2, 2, 100, "a", text="#fyp"),
            _video(3, 3, 100, "a", text="#FYP #dogs"),
            _video(4, 4, 100, "a", text="no tags"),
        ],
    )
    calculate_trends(AS_OF, 48, db_path=str(db_path))
    with connect(db_path) as con:
        tags = hashtag_trends(con, AS_OF).set_index("hashtag")
    assert tags.loc["fyp", "video_count"] == 3
    assert tags.loc["fyp", "share_of_videos"] == pytest.approx(0.75)
    assert set(tags.index) == {"fyp", "cats", "dogs"}


def test_a_rerun_replaces_its_snapshot_and_older_snapshots_stay_queryable(db_path: Path) -> None:
    _store(db_path, [_video(1, 1, 100, "a"), _video(2, 30, 100, "b")])
    calculate_trends(AS_OF, 48, db_path=str(db_path))
    calculate_trends(AS_OF, 48, db_path=str(db_path))
    earlier = AS_OF - timedelta(hours=20)
    calculate_trends(earlier, 48, db_path=str(db_path))
    with connect(db_path) as con:
        counts = con.execute(
            "SELECT as_of, count(*) FROM trending_sounds GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert snapshot_as_of(con, AS_OF - timedelta(hours=1)) == (earlier, 48)
        assert snapshot_as_of(con, AS_OF) == (AS_OF, 48)
        assert snapshot_as_of(con, earlier - timedelta(days=1)) is None
        assert top_sounds(con, earlier - timedelta(days=1)).empty
    assert counts == [(earlier, 1), (AS_OF, 2)]


def test_as_of_forms(db_path: Path) -> None:
    _store(db_path, [_video(1, 5, 100, "a")])
    with connect(db_path) as con:
        assert resolve_as_of(con, "latest") == AS_OF - timedelta(hours=5) + timedelta(seconds=1)
        assert resolve_as_of(con, "2024-03-10T14:00:00+02:00") == AS_OF
        assert (
            resolve_as_of(con, datetime(2024, 3, 10, 14, tzinfo=timezone(timedelta(hours=2))))
            == AS_OF
        )
        assert abs(resolve_as_of(con, None) - datetime.now(UTC).replace(tzinfo=None)) < timedelta(
            minutes=1
        )


def test_latest_on_an_empty_store_and_bad_window_are_clear_errors(db_path: Path) -> None:
    with pytest.raises(ValueError, match="ingest some first"):
        calculate_trends("latest", db_path=str(db_path))
    with pytest.raises(ValueError, match="window_hours must be positive"):
        calculate_trends(AS_OF, 0, db_path=str(db_path))


def test_an_empty_window_writes_nothing(db_path: Path) -> None:
    result = calculate_trends(AS_OF, 48, db_path=str(db_path))
    assert (result.videos_in_window, result.sounds, result.hashtags) == (0, 0, 0)


def test_a_dry_run_computes_the_snapshot_and_stores_nothing(db_path: Path) -> None:
    _store(db_path, [_video(1, 2, 600, "new"), _video(2, 30, 200_000, "big")])
    dry = calculate_trends(AS_OF, 48, db_path=str(db_path), dry_run=True)
    assert (dry.videos_in_window, dry.sounds) == (2, 2)
    assert dry.sound_table["sound_key"].tolist() == ["new", "big"]  # highest velocity first
    with connect(db_path) as con:
        assert snapshot_as_of(con, AS_OF) is None
    kept = calculate_trends(AS_OF, 48, db_path=str(db_path))
    same = ["sound_key", "video_count", "velocity_score", "trend_phase"]
    assert kept.sound_table[same].equals(dry.sound_table[same])
    assert set(_sounds(db_path)) == {"big", "new"}


def test_trend_history_follows_the_top_sounds_back_window_by_window(db_path: Path) -> None:
    _store(
        db_path,
        [_video(1, 2, 600, "new"), _video(2, 50, 9000, "new"), _video(3, 60, 5000, "old")],
    )
    with connect(db_path) as con:
        history = trend_history(con, AS_OF, 48, 3)
        assert snapshot_as_of(con, AS_OF) is None  # computed, not stored
    sounds = history[history["kind"] == "sound"]
    assert sounds["key"].unique().tolist() == ["new"]  # the top of the newest window only
    assert sounds["as_of"].tolist() == [
        AS_OF - timedelta(hours=96),
        AS_OF - timedelta(hours=48),
        AS_OF,
    ]
    assert sounds["velocity_score"].iloc[0] == 0.0  # not used in the oldest window
    assert (sounds["velocity_score"].iloc[1:] > 0).all()
    assert history[history["kind"] == "hashtag"]["name"].unique().tolist() == ["#dance"]
