"""The flat CSV layouts: 2021 user timelines, 2025 trending, 2025 Vietnamese web-UI scrapes and
the 2020 suggested-creator crawl."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import RAW
from virtuna.ingest import detect_format, ingest_file
from virtuna.ingest.csv_tables import (
    SUGGESTED_CSV,
    TIMELINE_CSV,
    TRENDING_CSV,
    VN_WEB_CSV,
    csv_header,
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


# --- vn_web_csv and suggested_csv, on rows cut from the real files ---------------------------

VN_TIMELINES = RAW / "tiktok_creator_timelines_vn_2025.csv"
VN_TIMELINES_B = RAW / "tiktok_creator_timelines_vn_2025_b.csv"
VN_FEED = RAW / "tiktok_foryou_feed_vn_2025.csv"


def _cut(source: Path, target: Path, lines: list[int]) -> Path:
    """The header and the given 1-based physical lines of a real file, bytes as they are."""
    physical = source.read_bytes().split(b"\n")
    target.write_bytes(b"\n".join([physical[0], *(physical[n - 1] for n in lines)]) + b"\n")
    return target


def _vn_rows(source: Path, lines: list[int]) -> list[dict]:
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for number, row in enumerate(reader, start=2) if number in lines]
    return map_csv_rows(
        VN_WEB_CSV, header, rows, list(range(len(rows))), source_ref="t", seen_keys={}
    ).rows.to_pylist()


def test_vn_rows_expand_abbreviated_counts_and_read_share_as_zero() -> None:
    # lehaphuongboutique,126.3K,7509465282499349790,₫230k,...,00:15,2453,78,4,Share,6,...
    (row,) = _vn_rows(VN_TIMELINES, [15])
    assert row["platform_video_id"] == "7509465282499349790"
    assert row["author_handle"] == "lehaphuongboutique"
    assert row["author_followers"] == 126_300
    assert (row["views"], row["likes"], row["comments"], row["shares"], row["saves"]) == (
        2453,
        78,
        4,
        0,
        6,
    )
    assert row["duration_seconds"] == 15.0
    assert row["hashtags"] == ["bikini", "loobook", "bra", "xuhuong2025"]
    assert row["video_url"].endswith("/video/7509465282499349790")
    assert row["description"] == "₫230k"


def test_vn_rows_with_millions_and_the_sound_by_title_and_author() -> None:
    # _tradangditam,3.5M,...,00:14,3.9M,168.5K,490,2682,4609,,...,nhạc nền - 🎶HẢI ĐỨC MUSIC✈,...
    (row,) = _vn_rows(VN_FEED, [22])
    assert (row["author_followers"], row["views"], row["likes"]) == (3_500_000, 3_900_000, 168_500)
    assert row["hashtags"] == []
    assert row["sound_id"] is None  # music_id went through a float: never a key
    assert (row["sound_name"], row["sound_author"]) == (
        "nhạc nền - 🎶HẢI ĐỨC MUSIC✈",
        "HẢI ĐỨC MUSIC🌊",
    )
    assert row["sound_original"] is False


def test_vn_scrape_time_is_read_as_utc_plus_7_and_post_time_as_utc() -> None:
    (row,) = _vn_rows(VN_TIMELINES, [15])  # scraped 2025-06-05 22:25:57 local, posted 12:00:35
    assert row["scraped_at"] == datetime(2025, 6, 5, 15, 25, 57)
    assert row["posted_at"] == datetime(2025, 5, 28, 12, 0, 35)


def test_vn_duration_not_loaded_and_photo_posts_have_none() -> None:
    (not_loaded,) = _vn_rows(VN_TIMELINES_B, [49])  # "00:00"
    (photo,) = _vn_rows(VN_TIMELINES, [2014])  # "" on a /photo/ post
    assert not_loaded["duration_seconds"] is None
    assert photo["duration_seconds"] is None
    assert photo["video_url"].endswith("/photo/7506119233806322949")


VN_HEADER = next(csv.reader(io.StringIO(VN_FEED.read_text(encoding="utf-8").split("\n")[0])))


def _vn_row(**values: str) -> list[str]:
    row = dict.fromkeys(VN_HEADER, "")
    row.update(
        vid_id="7509465282499349790",
        vid_postTime="2025-05-28 12:00:35",
        vid_scrapeTime="2025-06-05 22:25:57",
        vid_nview="2453",
        vid_nlike="78",
    )
    row.update(values)
    return [row[c] for c in VN_HEADER]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"vid_duration": "36:52"}, ("duration_seconds", 2212.0)),
        ({"vid_duration": "1:02:03"}, ("duration_seconds", 3723.0)),
        ({"vid_nview": "16.4M"}, ("views", 16_400_000)),
        ({"vid_nview": "33K"}, ("views", 33_000)),
        ({"vid_nview": ""}, ("views", None)),
    ],
)
def test_vn_values(values: dict[str, str], expected: tuple[str, object]) -> None:
    batch = map_csv_rows(
        VN_WEB_CSV, VN_HEADER, [_vn_row(**values)], [0], source_ref="t", seen_keys={}
    )
    column, value = expected
    assert batch.rows.to_pylist()[0][column] == value


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"vid_nview": "2,453"}, "views: not a count (2,453)"),
        ({"vid_nlike": "1.2345K"}, "likes: not a count (1.2345K)"),
        ({"user_nfollower": "12 K"}, "author_followers: not a count (12 K)"),
        ({"vid_nshare": "Teilen"}, "shares: not a count (Teilen)"),
        ({"vid_nsave": "1.5"}, "saves: not a whole number (1.5)"),
        ({"vid_duration": "0:75"}, "duration_seconds: not a duration (0:75)"),
        ({"vid_duration": "15s"}, "duration_seconds: not a duration (15s)"),
        ({"vid_scrapeTime": "yesterday"}, "scraped_at: not a time (yesterday)"),
        ({"vid_nview": ""}, None),
        ({"vid_nview": "", "vid_nlike": ""}, "no engagement counts"),
    ],
)
def test_vn_values_that_do_not_parse_are_rejects_with_reasons(
    values: dict[str, str], reason: str | None
) -> None:
    batch = map_csv_rows(
        VN_WEB_CSV, VN_HEADER, [_vn_row(**values)], [0], source_ref="t", seen_keys={}
    )
    if reason is None:  # an empty count is unknown, not wrong
        assert batch.rows.num_rows == 1
    else:
        assert batch.rows.num_rows == 0
        assert reason in batch.rejects[0].reason


def test_the_byte_order_mark_does_not_hide_the_first_column(tmp_path: Path) -> None:
    path = _cut(VN_TIMELINES, tmp_path / "t.csv", [15])
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert csv_header(path)[0] == "user_name"
    assert detect_format(path) == "vn_web_csv"


def test_a_re_scraped_video_keeps_its_latest_scrape_whatever_the_order(
    tmp_path: Path, db_path: Path
) -> None:
    # 7476428172049894664: 531.9K views scraped 2025-06-09 04:11:12 (line 2545) and 531.8K
    # scraped 01:47:06 (line 3115); 7482...: three scrapes with equal counts (2534, 3104, 3393).
    for order in ([2545, 3115, 2534, 3104, 3393], [3393, 3115, 2534, 2545, 3104]):
        db = tmp_path / f"{order[0]}.duckdb"
        report = ingest_file(_cut(VN_TIMELINES_B, tmp_path / "b.csv", order), db_path=db)
        assert (report.read, report.inserted, report.updated, report.rejected) == (5, 2, 3, 0)
        with connect(db) as con:
            stored = con.execute(
                "SELECT platform_video_id, views, scraped_at FROM scraped_videos ORDER BY 1"
            ).fetchall()
        assert stored[0][1:] == (531_900, datetime(2025, 6, 8, 21, 11, 12))
        assert stored[1][2] == datetime(2025, 6, 8, 21, 8, 22)  # 04:08:22 local, the latest


def test_suggested_rows_from_the_real_parts() -> None:
    path = RAW / "tiktok_suggested_creators_2020_part1.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [next(reader) for _ in range(2)]
    batch = map_csv_rows(SUGGESTED_CSV, header, rows, [0, 1], source_ref="t", seen_keys={})
    first = batch.rows.to_pylist()[0]
    # 6892428462015958273,1604768557,john.cena10,"['johncena', ...]",الصوت الأصلي,8,1984,3,18,...
    assert first["platform_video_id"] == "6892428462015958273"
    assert first["posted_at"] == datetime(2020, 11, 7, 17, 2, 37)
    assert first["author_handle"] == "john.cena10"
    assert first["hashtags"] == ["johncena", "love", "tiktok", "fyp", "foryoupage", "vibes"]
    assert (first["sound_name"], first["sound_original"]) == ("الصوت الأصلي", True)
    assert (first["duration_seconds"], first["likes"], first["shares"], first["comments"]) == (
        8.0,
        1984,
        3,
        18,
    )
    assert (first["views"], first["author_followers"], first["author_hearts"]) == (
        12_800,
        1_000_000,
        4_700_000,
    )
    assert first["author_videos"] == 211
    assert first["description"] is None
    assert first["scraped_at"] == datetime(2020, 11, 8, 2, 43)  # the files' commit time
    assert detect_format(path) == "suggested_csv"


def test_suggested_named_song_is_not_an_original_sound() -> None:
    header = ["id", "create_time", "user_name", "hashtags", "song", "video_length", "n_likes"]
    header += ["n_shares", "n_comments", "n_plays", "n_followers", "n_total_likes", "n_total_vids"]
    row = ["6892428462015958273", "1604768557", "a", "[]", "Savage Love", "8", "1", "0", "0"]
    row += ["10", "5", "5", "1"]
    (stored,) = map_csv_rows(
        SUGGESTED_CSV, header, [row], [0], source_ref="t", seen_keys={}
    ).rows.to_pylist()
    assert (stored["sound_name"], stored["sound_original"], stored["hashtags"]) == (
        "Savage Love",
        False,
        [],
    )
