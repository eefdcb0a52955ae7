"""Bulk upsert of mapped videos and the rejects table."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_item
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.store import connect
from virtuna.store.videos import Reject, record_rejects, video_summary


def _batch(*items: dict, ref: str = "test.jsonl"):
    return map_items([json.dumps(i) for i in items], source="apify", source_ref=ref)


def test_insert_then_update_counts(db_path: Path) -> None:
    with connect(db_path) as con:
        first = store_batch(
            con, _batch(make_item(id="1"), make_item(id="2")), source="apify", source_ref="a"
        )
        second = store_batch(
            con,
            _batch(make_item(id="2", playCount=99), make_item(id="3")),
            source="apify",
            source_ref="a",
        )
        views = dict(con.execute("SELECT platform_video_id, views FROM scraped_videos").fetchall())
    assert first == (2, 0, 0)
    assert second == (1, 1, 0)
    assert views == {"1": 52000, "2": 99, "3": 52000}


def test_a_source_that_knows_less_does_not_erase_what_is_stored(db_path: Path) -> None:
    rich = make_item(id="1")
    poor = make_item(id="1", collectCount=None, authorMeta={"name": "chef_ana"})
    with connect(db_path) as con:
        store_batch(con, _batch(rich), source="apify", source_ref="a")
        store_batch(con, _batch(poor), source="apify", source_ref="b")
        row = con.execute(
            "SELECT saves, author_followers, author_handle FROM scraped_videos"
        ).fetchone()
    assert row == (230, 12000, "chef_ana")


def test_upsert_keeps_first_ingest_time_and_moves_updated_at(db_path: Path) -> None:
    with connect(db_path) as con:
        store_batch(con, _batch(make_item(id="1")), source="apify", source_ref="a")
        before = con.execute("SELECT ingested_at, updated_at FROM scraped_videos").fetchone()
        store_batch(con, _batch(make_item(id="1", playCount=7)), source="apify", source_ref="a")
        after = con.execute("SELECT ingested_at, updated_at FROM scraped_videos").fetchone()
    assert after[0] == before[0]
    assert after[1] >= before[1]


def test_rejects_are_replaced_not_duplicated_on_reingest(db_path: Path) -> None:
    rejects = [Reject(3, "malformed JSON", "{bad"), Reject(7, "views: not a number", "{}")]
    with connect(db_path) as con:
        record_rejects(con, "apify", "f.jsonl", rejects)
        record_rejects(con, "apify", "f.jsonl", rejects)
        rows = con.execute(
            "SELECT position, reason, raw FROM ingest_rejects ORDER BY position"
        ).fetchall()
    assert rows == [(3, "malformed JSON", "{bad"), (7, "views: not a number", "{}")]


def test_summary_counts_per_source(db_path: Path) -> None:
    with connect(db_path) as con:
        store_batch(
            con, _batch(make_item(id="1"), make_item(id="2")), source="apify", source_ref="a"
        )
        summary = video_summary(con)
    assert summary[0]["source"] == "apify"
    assert summary[0]["videos"] == 2
    assert summary[0]["creators"] == 1
