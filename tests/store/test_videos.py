"""Bulk upsert of mapped videos and the rejects table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import make_item
from virtuna.ingest import store_batch
from virtuna.ingest.batch import MappedBatch
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


def _at(day: int | None, **values: object) -> dict:
    """An item observed on 2025-06-<day> (None: an unknown scrape time)."""
    item = make_item(id="1", **values)
    return {"item": item, "scraped_at": None if day is None else datetime(2025, 6, day)}


def _store(con, *observations: dict, fill_only: bool = False) -> None:
    for seen in observations:
        batch = map_items(
            [json.dumps(seen["item"])],
            source="apify",
            source_ref="a",
            scraped_at=seen["scraped_at"],
        )
        batch.fill_only = fill_only
        store_batch(con, batch, source="apify", source_ref="a")


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        ([_at(5, playCount=5), _at(9, playCount=9)], 9),  # later known time wins
        ([_at(9, playCount=9), _at(5, playCount=5)], 9),  # ... whatever the order
        ([_at(None, playCount=1), _at(5, playCount=5)], 5),  # known beats unknown
        ([_at(5, playCount=5), _at(None, playCount=1)], 5),
        ([_at(None, playCount=1), _at(None, playCount=2)], 2),  # both unknown: last ingest
    ],
)
def test_the_newer_observation_wins_whatever_the_order(
    db_path: Path, observations: list[dict], expected: int
) -> None:
    with connect(db_path) as con:
        _store(con, *observations)
        views, scraped = con.execute("SELECT views, scraped_at FROM scraped_videos").fetchone()
    assert views == expected
    winner = next(o for o in observations if o["item"]["playCount"] == expected)
    assert scraped == winner["scraped_at"]


def test_the_losing_observation_still_fills_what_the_winner_lacks(db_path: Path) -> None:
    newer = _at(9, playCount=9, collectCount=None)
    older = _at(5, playCount=5, collectCount=77)
    with connect(db_path) as con:
        _store(con, newer, older)
        row = con.execute("SELECT views, saves FROM scraped_videos").fetchone()
    assert row == (9, 77)


def test_a_fill_only_batch_never_overwrites(db_path: Path) -> None:
    with connect(db_path) as con:
        _store(con, _at(None, playCount=9, collectCount=None))
        _store(con, _at(None, playCount=5, collectCount=77), fill_only=True)
        row = con.execute("SELECT views, saves FROM scraped_videos").fetchone()
    assert row == (9, 77)


def test_repeats_of_a_key_in_one_batch_are_updates_and_the_latest_scrape_stays(
    db_path: Path,
) -> None:
    items = [make_item(id="1", playCount=n) for n in (7, 9, 5)]
    times = [datetime(2025, 6, d) for d in (7, 9, 5)]
    batch = map_items(
        [json.dumps(i) for i in items], source="apify", source_ref="a", keep_repeats=True
    )
    stamped = batch.rows.set_column(
        batch.rows.column_names.index("scraped_at"),
        "scraped_at",
        pa.array(times, type=pa.timestamp("us")),
    )
    batch = MappedBatch(rows=stamped)
    with connect(db_path) as con:
        counts = store_batch(con, batch, source="apify", source_ref="a")
        row = con.execute("SELECT views, scraped_at FROM scraped_videos").fetchone()
    assert counts == (1, 2, 0)
    assert row == (9, datetime(2025, 6, 9))
