"""The online point-in-time tables: kept equal to a rebuild by every upsert, and the features
read from them by key equal the features computed set-based over the whole history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import make_item
from virtuna.engine.creator import RECENT_POSTS, creator_context
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.ml.features import build_features, draft_rows, training_rows
from virtuna.store import connect, run
from virtuna.store.online import (
    ONLINE_TABLES,
    SOUND_KEY_SQL,
    MemoryReader,
    StoreReader,
    refresh_online,
    sound_key,
)


def _tables(con) -> dict[str, list[tuple]]:
    """The online tables' rows; summed log views to 6 decimals (adding a batch's sum to a
    day's and summing the day afresh may differ in the last bits)."""
    sums = {"online_sound_days": " REPLACE (round(log_views, 6) AS log_views)"}
    return {t: run(con, f"SELECT *{sums.get(t, '')} FROM {t} ORDER BY ALL") for t in ONLINE_TABLES}


def _store(con, *items: dict, ref: str = "online.jsonl") -> None:
    import json

    batch = map_items(
        [json.dumps(i) for i in items], start_position=0, source="apify", source_ref=ref
    )
    store_batch(con, batch, source="apify", source_ref=ref)


def _item(video: str, author: str, day: int, views: int, **extra: object) -> dict:
    created = 1_700_000_000 + day * 86_400
    return make_item(
        id=video,
        createTime=created,
        createTimeISO=pd.Timestamp(created, unit="s").isoformat() + "Z",
        authorMeta={"id": f"id-{author}", "name": author, "fans": 1000 + day},
        playCount=views,
        **extra,
    )


def _rebuilt(con) -> dict[str, list[tuple]]:
    con.begin()
    refresh_online(con)
    rebuilt = _tables(con)
    con.rollback()
    return rebuilt


def test_every_upsert_keeps_the_online_tables_equal_to_a_rebuild(db_path: Path) -> None:
    with connect(db_path) as con:
        _store(con, _item("1", "ana", 0, 100), _item("2", "ana", 1, 300), _item("3", "bo", 1, 50))
        assert _tables(con) == _rebuilt(con)
        posts = run(con, "SELECT count(*) FROM online_creator_posts WHERE author_key = 'ana'")
        assert posts == [(2,)]
        # A re-scrape moves video 2 to another author and sound, and changes its views: both
        # the old and the new keys are rebuilt.
        moved = _item(
            "2",
            "cy",
            1,
            900,
            musicMeta={"musicId": "m-9", "musicName": "song", "musicOriginal": False},
            text="#newtag",
        )
        _store(con, moved, _item("4", "ana", 2, 70), ref="later.jsonl")
        assert _tables(con) == _rebuilt(con)
        authors = dict(
            run(con, "SELECT author_key, count(*) FROM online_creator_posts GROUP BY ALL")
        )
        assert authors == {"ana": 2, "bo": 1, "cy": 1}
        views = run(con, "SELECT views FROM online_creator_posts WHERE author_key = 'cy'")
        assert views == [(900,)]


def test_the_migration_fills_the_tables_from_stored_videos(bundled_copy: Path) -> None:
    with connect(bundled_copy) as con:
        assert _tables(con) == _rebuilt(con)
        (creators,) = run(con, "SELECT count(DISTINCT author_key) FROM online_creator_posts")[0]
        (authors,) = run(
            con,
            "SELECT count(DISTINCT coalesce(author_handle, author_id)) FROM scraped_videos "
            "WHERE posted_at IS NOT NULL",
        )[0]
        assert creators == authors > 1000


@pytest.mark.slow
def test_features_by_key_equal_the_set_based_features_on_1000_real_videos(
    bundled_store: Path,
) -> None:
    with connect(bundled_store) as con:
        rows = training_rows(con)
        sample = rows.sample(1000, random_state=7)
        online = build_features(con, sample, source="online")
        history = build_features(con, sample, source="history")
        memory = build_features(None, sample, reader=MemoryReader(con))
    pd.testing.assert_frame_equal(online, history)
    pd.testing.assert_frame_equal(memory, history)
    # The sample exercises every part: creators with history, sounds and hashtags in use.
    assert (online["prior_posts"] > 0).sum() > 500
    assert (online["sound_uses_before"] > 0).sum() > 100
    assert (online["hashtag_max_uses_7d"] > 0).sum() > 100


def test_a_drafts_sound_is_keyed_as_every_stored_videos_sound(bundled_store: Path) -> None:
    with connect(bundled_store) as con:
        sounds = run(
            con,
            f"SELECT DISTINCT sound_id, sound_name, sound_original, {SOUND_KEY_SQL} "
            "FROM scraped_videos",
        )
    assert len(sounds) > 1000
    wrong = [s for s in sounds if sound_key(*s[:3]) != s[3]]  # type: ignore[arg-type]
    assert wrong == []
    # Hostile titles: only spaces are trimmed, as DuckDB's trim does.
    assert sound_key(None, "\t Mixed Case ", False) == "\t mixed case"
    assert sound_key(None, "Song", True) is None
    assert sound_key(None, "İlkan ΟΔΟΣ", False) == "ilkan οδοσ"


@pytest.mark.slow
def test_the_memory_reader_gives_the_creator_context_and_drafts_of_the_store(
    bundled_store: Path,
) -> None:
    with connect(bundled_store) as con:
        memory = MemoryReader(con)
        store = StoreReader(con)
        sample = training_rows(con).sample(200, random_state=11)
        drafts = [
            {"text": t, "creator_handle": a, "posted_at": p.to_pydatetime()}
            for t, a, p in zip(
                sample["description"].fillna(""),
                sample["author_key"],
                sample["posted_at"],
                strict=True,
            )
        ]
        pd.testing.assert_frame_equal(
            draft_rows(None, drafts, reader=memory), draft_rows(con, drafts)
        )
        platform = {"median_views": 1.0, "engagement_rate": 0.1}
        for handle, moment in zip(sample["author_key"], sample["posted_at"], strict=True):
            at = moment.to_pydatetime()
            by_key = creator_context(con, handle, at, platform, reader=store)
            copied = creator_context(None, handle, at, platform, reader=memory)
            assert copied == by_key
        # Before the first post: no history; long after the last: the latest RECENT_POSTS.
        first = creator_context(con, handle, datetime(2000, 1, 1), platform, reader=memory)
        assert first.earlier_posts == 0 and first.median_views is None
        last = creator_context(con, handle, datetime(2100, 1, 1), platform, reader=memory)
        (posts,) = run(
            con, "SELECT count(*) FROM online_creator_posts WHERE author_key = ?", [handle]
        )[0]
        assert last.found and last.earlier_posts == min(posts, RECENT_POSTS)


def test_a_draft_reads_only_its_own_keys(db_path: Path) -> None:
    with connect(db_path) as con:
        _store(con, _item("1", "ana", 0, 100), _item("2", "ana", 1, 300), _item("3", "bo", 1, 5))
        draft = training_rows(con).iloc[[-1]].assign(posted_at=pd.Timestamp("2030-01-01"))
        before = build_features(con, draft, source="online")
        # Videos of other creators, sounds and hashtags change nothing for this draft.
        _store(
            con,
            _item("9", "zed", 1, 10**6, text="#other", musicMeta={"musicId": "z"}),
            ref="z.jsonl",
        )
        after = build_features(con, draft, source="online")
    pd.testing.assert_frame_equal(before, after)


def test_a_merged_video_gets_the_key_its_merged_values_make(db_path: Path) -> None:
    """A fill-only batch can give a stored video a sound key that neither the stored row nor
    the batch row had (the stored 'not original' flag with the batch's title)."""
    import dataclasses
    import json

    stored = _item("1", "ana", 0, 100, musicMeta={"musicOriginal": False})
    filler = _item(
        "1", "ana", 0, 100, musicMeta={"musicName": "Shared Song", "musicOriginal": True}
    )
    with connect(db_path) as con:
        _store(con, stored)
        batch = map_items(
            [json.dumps(filler)], start_position=0, source="apify", source_ref="fill.jsonl"
        )
        store_batch(con, dataclasses.replace(batch, fill_only=True), source="apify", source_ref="f")
        assert run(con, "SELECT sound_key FROM online_sound_days") == [("shared song",)]
        assert _tables(con) == _rebuilt(con)
