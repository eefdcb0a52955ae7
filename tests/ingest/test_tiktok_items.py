"""The TikTok item mapping shared by Apify files, drawrowfly files and the live webhook."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.conftest import RAW, make_item
from virtuna.ingest.tiktok_items import map_items, parse_item_hashtags, read_jsonl


def _map(*raws: str):
    return map_items(list(raws), source="apify", source_ref="t")


def test_item_fields_land_in_their_columns() -> None:
    batch = _map(json.dumps(make_item()))
    row = batch.rows.to_pylist()[0]
    assert row["platform_video_id"] == "7300000000000000001"
    assert row["posted_at"] == datetime(2023, 11, 14, 22, 13, 20)  # createTime, UTC
    assert (row["author_handle"], row["author_followers"], row["author_hearts"]) == (
        "chef_ana",
        12000,
        340000,
    )
    assert row["author_videos"] == 88
    assert (row["sound_id"], row["sound_original"], row["duration_seconds"]) == (
        "7000000000000000001",
        True,
        21.0,
    )
    assert (row["views"], row["likes"], row["shares"], row["comments"], row["saves"]) == (
        52000,
        1500,
        40,
        61,
        230,
    )
    assert json.loads(row["raw"])["id"] == "7300000000000000001"


def test_hashtags_come_from_the_tag_list_without_hash() -> None:
    item = make_item(hashtags=[{"name": "Cooking"}, {"name": "#fyp"}, {"name": "cooking"}])
    assert _map(json.dumps(item)).rows["hashtags"].to_pylist() == [["cooking", "fyp"]]


def test_hashtags_fall_back_to_the_caption_when_the_item_has_no_list() -> None:
    assert "hashtags" not in make_item()
    assert _map(json.dumps(make_item())).rows["hashtags"].to_pylist() == [["cooking", "fyp"]]


def test_every_problem_of_a_bad_row_is_named_and_the_raw_text_kept() -> None:
    bad = json.dumps(make_item(playCount="lots", diggCount=-5, createTime=12))
    batch = _map(bad)
    assert batch.rows.num_rows == 0
    (reject,) = batch.rejects
    assert "views: not a number (lots)" in reject.reason
    assert "likes: out of range (-5)" in reject.reason
    assert "posted_at: out of range" in reject.reason
    assert reject.raw == bad


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps(make_item(id="", webVideoUrl="")), "platform_video_id: missing"),
        (json.dumps(make_item(hashtags="fyp")), "hashtags: cannot parse"),
        (json.dumps(make_item(videoMeta={"duration": "long"})), "duration_seconds: not a number"),
        (json.dumps(make_item(authorMeta={"verified": "maybe"})), "author_verified: not a boolean"),
    ],
)
def test_structural_problems_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    batch = _map(raw)
    assert batch.rows.num_rows == 0
    assert reason in batch.rejects[0].reason


def test_a_good_row_among_bad_ones_is_kept_with_positions() -> None:
    batch = map_items(
        ["{bad", json.dumps(make_item(id="9")), "[]"],
        source="apify",
        source_ref="t",
        positions=[10, 11, 12],
    )
    assert batch.rows["platform_video_id"].to_pylist() == ["9"]
    assert [r.position for r in batch.rejects] == [10, 12]
    assert batch.read == 3


def test_a_repeated_id_is_rejected_as_a_duplicate_across_chunks() -> None:
    seen: dict[str, int] = {}
    first = map_items(
        [json.dumps(make_item(id="5"))], source="apify", source_ref="t", seen_keys=seen
    )
    second = map_items(
        [json.dumps(make_item(id="5"))],
        source="apify",
        source_ref="t",
        start_position=1,
        seen_keys=seen,
    )
    assert first.rows.num_rows == 1
    assert second.rows.num_rows == 0
    assert "duplicate video id 5 (first at position 0)" in second.rejects[0].reason


def test_bundled_item_with_height_in_place_of_video_count_is_kept_without_that_count() -> None:
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    drifted = json.loads(lines[115])
    assert "video" not in drifted["authorMeta"] and "height" in drifted["authorMeta"]
    batch = _map(lines[115])
    row = batch.rows.to_pylist()[0]
    assert row["author_videos"] is None  # unknown, not the 1024 that sits in its place
    assert row["author_followers"] == drifted["authorMeta"]["fans"]
    assert not batch.rejects


def test_parse_item_hashtags_absent_list_means_unknown() -> None:
    assert parse_item_hashtags(None) is None
    assert parse_item_hashtags('[{"name": "A"}, {"name": ""}, "b"]') == ["a", "b"]


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_read_jsonl_numbers_lines_across_blocks(tmp_path, block_bytes: int) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n  \n{"b":2}\n\xff\xfe bad\n{"c":3}')  # no final newline
    blocks = list(read_jsonl(path, block_bytes=block_bytes))
    positions = [p for b in blocks for p in b.positions.to_pylist()]
    lines = [line for b in blocks for line in b.lines.to_pylist()]
    rejects = [r for b in blocks for r in b.rejects]
    assert positions == [0, 3, 5]
    assert lines == ['{"a":1}', '{"b":2}', '{"c":3}']
    assert [(r.position, r.reason.split(" (")[0]) for r in rejects] == [(4, "not valid UTF-8")]
    assert sum(b.consumed for b in blocks) == path.stat().st_size


def test_a_count_too_large_for_bigint_is_rejected_not_stored_as_null() -> None:
    batch = _map('{"id": "7300000000000000001", "createTime": 1700000000, "playCount": 1e300}')
    assert batch.rows.num_rows == 0
    (reject,) = batch.rejects
    assert "views: out of range" in reject.reason


def test_an_item_with_only_an_id_is_rejected_with_a_reason() -> None:
    batch = _map('{"id": "7300000000000000001"}')
    assert batch.rows.num_rows == 0
    (reject,) = batch.rejects
    assert "no engagement counts" in reject.reason


def test_an_item_without_id_time_or_handle_takes_them_from_its_url_and_id() -> None:
    item = make_item(webVideoUrl="https://www.tiktok.com/@Coinecoinee/video/7502812971429612807")
    for key in ("id", "createTime", "createTimeISO"):
        del item[key]
    del item["authorMeta"]["name"]
    (row,) = _map(json.dumps(item)).rows.to_pylist()
    assert row["platform_video_id"] == "7502812971429612807"
    assert row["posted_at"] == datetime(2025, 5, 10, 13, 46, 13)  # 7502812971429612807 >> 32
    assert row["author_handle"] == "coinecoinee"


def test_a_short_id_gives_no_post_time() -> None:
    item = make_item(id="6597000000000000")  # 16 digits: the top bits are not a time
    del item["createTime"]
    (row,) = _map(json.dumps(item)).rows.to_pylist()
    assert row["posted_at"] is None
