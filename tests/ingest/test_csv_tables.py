"""The two flat CSV layouts: 2021 user timelines and 2025 trending."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from virtuna.ingest import ingest_file
from virtuna.ingest.csv_tables import (
    TIMELINE_CSV,
    TRENDING_CSV,
    map_csv_rows,
    parse_comma_hashtags,
    parse_python_list_hashtags,
)
from virtuna.store import connect

TIMELINE_HEADER = [
    "id",
    "text",
    "createTime",
    "authorMeta.id",
    "authorMeta.verified",
    "authorMeta.following",
    "authorMeta.fans",
    "authorMeta.heart",
    "authorMeta.video",
    "authorMeta.digg",
    "musicMeta.musicId",
    "musicMeta.musicOriginal",
    "musicMeta.duration",
    "videoMeta.duration",
    "diggCount",
    "shareCount",
    "playCount",
    "commentCount",
    "hashtags",
]
TRENDING_HEADER = [
    "video_id",
    "author",
    "description",
    "likes",
    "comments",
    "shares",
    "plays",
    "hashtags",
    "music",
    "create_time",
    "video_url",
    "fetch_time",
    "views",
    "posted_time",
]


def _timeline_row(**values: str) -> list[str]:
    row = dict.fromkeys(TIMELINE_HEADER, "")
    row.update(
        {
            "id": "6.94656e+18",
            "text": "sahur #fyp",
            "createTime": "1617370964.0",
            "authorMeta.id": "6.65334e+18",
            "authorMeta.verified": "0.0",
            "authorMeta.fans": "26600.0",
            "authorMeta.heart": "173900.0",
            "authorMeta.video": "330.0",
            "musicMeta.musicOriginal": "1.0",
            "videoMeta.duration": "26.0",
            "diggCount": "88.0",
            "shareCount": "0.0",
            "playCount": "232.0",
            "commentCount": "1.0",
            "hashtags": "[{'name': ''}, {'name': 'fypシ'}, {'name': 'FYP'}]",
        }
    )
    row.update(values)
    return [row[c] for c in TIMELINE_HEADER]


def test_timeline_rows_get_a_stable_key_from_author_and_post_time() -> None:
    batch = map_csv_rows(
        TIMELINE_CSV, TIMELINE_HEADER, [_timeline_row()], [0], source_ref="t", seen_keys={}
    )
    row = batch.rows.to_pylist()[0]
    assert row["platform_video_id"] == "tl:6.65334e+18:1617370964"
    assert row["posted_at"] == datetime(2021, 4, 2, 13, 42, 44)
    assert (row["views"], row["likes"], row["author_followers"]) == (232, 88, 26600)
    assert (row["author_verified"], row["sound_original"]) == (False, True)
    assert row["sound_id"] is None  # lossy in the source: never a key
    assert row["hashtags"] == ["fypシ", "fyp"]
    assert json.loads(row["raw"])["authorMeta.id"] == "6.65334e+18"


def test_timeline_row_with_broken_values_is_rejected() -> None:
    bad = _timeline_row(playCount="n/a", hashtags="[{'name': ")
    batch = map_csv_rows(TIMELINE_CSV, TIMELINE_HEADER, [bad], [4], source_ref="t", seen_keys={})
    assert batch.rows.num_rows == 0
    assert batch.rejects[0].position == 4
    assert "views: not a number (n/a)" in batch.rejects[0].reason


def test_timeline_hashtag_literal_that_does_not_parse_is_a_reason() -> None:
    batch = map_csv_rows(
        TIMELINE_CSV,
        TIMELINE_HEADER,
        [_timeline_row(hashtags="[{'name': ")],
        [0],
        source_ref="t",
        seen_keys={},
    )
    assert batch.rejects[0].reason.startswith("hashtags: cannot parse")


def _trending_row(**values: str) -> list[str]:
    row = dict.fromkeys(TRENDING_HEADER, "")
    row.update(
        {
            "video_id": "7506183500660313390",
            "author": "@DaleBrisby90",
            "description": "TRUTH #rodeo",
            "likes": "44800",
            "comments": "125",
            "shares": "1863",
            "plays": "686000.0",
            "hashtags": "rodeotime, Dalebrisby",
            "music": "original sound",
            "create_time": "2025-05-19 15:45:53",
            "video_url": "https://www.tiktok.com/@dalebrisby90/video/7506183500660313390",
        }
    )
    row.update(values)
    return [row[c] for c in TRENDING_HEADER]


def test_trending_rows_map_and_normalise_handles() -> None:
    batch = map_csv_rows(
        TRENDING_CSV, TRENDING_HEADER, [_trending_row()], [0], source_ref="t", seen_keys={}
    )
    row = batch.rows.to_pylist()[0]
    assert row["author_handle"] == "dalebrisby90"
    assert row["posted_at"] == datetime(2025, 5, 19, 15, 45, 53)
    assert row["views"] == 686000
    assert row["hashtags"] == ["rodeotime", "dalebrisby"]
    assert row["sound_original"] is True
    assert row["scraped_at"] is None


def test_trending_rows_of_the_second_scrape_use_views_and_posted_time() -> None:
    other = _trending_row(
        plays="",
        create_time="",
        views="238300.0",
        posted_time="2025-05-21 02:09:20",
        fetch_time="2025-05-25 11:38:31",
        music="The Winner Is...",
    )
    row = map_csv_rows(
        TRENDING_CSV, TRENDING_HEADER, [other], [0], source_ref="t", seen_keys={}
    ).rows.to_pylist()[0]
    assert row["views"] == 238300
    assert row["posted_at"] == datetime(2025, 5, 21, 2, 9, 20)
    assert row["scraped_at"] == datetime(2025, 5, 25, 11, 38, 31)
    assert row["sound_original"] is False


def test_hashtag_parsers() -> None:
    assert parse_python_list_hashtags("[{'name': 'A'}, {'name': ''}]") == ["a"]
    assert parse_python_list_hashtags(None) is None
    assert parse_comma_hashtags(" fyp, #Dogs ,, dogs") == ["fyp", "dogs"]
    with pytest.raises(ValueError):
        parse_python_list_hashtags("{'name': 'a'}")


def test_a_row_with_the_wrong_number_of_fields_is_rejected(tmp_path: Path, db_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRENDING_HEADER)
    writer.writerow(_trending_row())
    writer.writerow(["7506183500660313391", "short row"])
    writer.writerow(_trending_row(video_id="7506183500660313392"))
    path = tmp_path / "trending.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    report = ingest_file(path, db_path=db_path)
    assert (report.read, report.inserted, report.rejected) == (3, 2, 1)
    with connect(db_path) as con:
        reject = con.execute("SELECT position, reason FROM ingest_rejects").fetchone()
    assert reject == (1, "expected 14 fields, found 2")
