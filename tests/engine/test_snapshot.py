"""How the engine meets the store: an in-memory copy reloaded when the store's inputs change
and kept while another process holds the store, no store connection per analysis, results
committed off the request's path."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_item
from virtuna.engine.baseline import FALLBACK_BASELINE
from virtuna.engine.pipeline import Engine
from virtuna.engine.snapshot import StoreSnapshot
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.store import connect, run
from virtuna.store.connection import changes_marker

DRAFT = {"content_text": "Wait for it... the best pasta you will ever make #cooking"}


def _ingest(db: Path, *items: dict) -> None:
    batch = map_items(
        [json.dumps(i) for i in items], start_position=0, source="apify", source_ref="s.jsonl"
    )
    with connect(db) as con:
        store_batch(con, batch, source="apify", source_ref="s.jsonl")


def _creators(snapshot: StoreSnapshot) -> int:
    return len(snapshot.reader().keyed("creator_posts", []).runs)


def test_an_ingest_reloads_the_copy_and_reads_alone_do_not(db_path: Path) -> None:
    snapshot = StoreSnapshot(db_path)
    assert _creators(snapshot) == 0
    loads = snapshot.loads
    with connect(db_path) as con:
        run(con, "SELECT count(*) FROM scraped_videos")  # reading changes nothing
    assert _creators(snapshot) == 0 and snapshot.loads == loads
    _ingest(db_path, make_item())
    assert _creators(snapshot) == 1
    assert snapshot.loads == loads + 1


def test_a_busy_store_keeps_the_old_copy_serving(db_path: Path, tmp_path: Path) -> None:
    snapshot = StoreSnapshot(db_path)
    assert _creators(snapshot) == 0
    _ingest(db_path, make_item())  # marks a change the copy has not seen yet
    holder = _hold(db_path, tmp_path / "holding")
    try:
        assert _creators(snapshot) == 0  # no wait, no error: the copy loaded earlier
    finally:
        holder.communicate(b"")
    assert _creators(snapshot) == 1  # the store is free again: the change arrives


def test_analyses_open_no_store_connection_once_the_copy_is_loaded(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.llm import llm_settings

    settings = llm_settings(None, None, virtuna_db_path=str(db_path))
    opened: list[str] = []
    real_connect = duckdb.connect

    def counting(database: str = ":memory:", *args: object, **kwargs: object):
        if database != ":memory:":
            opened.append(database)
        return real_connect(database, *args, **kwargs)

    async def go() -> list[float]:
        async with Engine(settings, db_path=db_path, baseline=FALLBACK_BASELINE) as engine:
            await engine.analyze(DRAFT, store=False)  # loads the copy
            monkeypatch.setattr(duckdb, "connect", counting)
            results = [await engine.analyze(DRAFT, store=False) for _ in range(5)]
            return [r.overall_score for r in results]

    scores = asyncio.run(go())
    assert opened == []
    assert len(set(scores)) == 1


def test_reads_from_a_current_copy_stay_on_the_event_loop_and_a_reload_goes_to_a_thread(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread only adds GIL contention to a few milliseconds of CPU; a load reads the store.
    from tests.fakes.llm import llm_settings

    settings = llm_settings(None, None, virtuna_db_path=str(db_path))
    threads: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(getattr(fn, "__name__", ""))
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)

    async def go() -> None:
        async with Engine(settings, db_path=db_path, baseline=FALLBACK_BASELINE) as engine:
            await engine.analyze(DRAFT, store=False)  # loads the copy: in a thread
            assert threads.count("_read_store") == 1
            await engine.analyze(DRAFT, store=False)  # current copy: on the loop
            assert threads.count("_read_store") == 1
            _ingest(db_path, make_item())  # the copy is stale: the reload goes to a thread
            result = await engine.analyze(DRAFT, store=False)
            assert threads.count("_read_store") == 2
            assert result.overall_score is not None

    asyncio.run(go())


def test_the_change_marker_sits_beside_the_store(db_path: Path) -> None:
    _ingest(db_path, make_item())
    assert changes_marker(db_path).exists()
    assert changes_marker(db_path).parent == db_path.parent


def _hold(db_path: Path, ready: Path) -> subprocess.Popen[bytes]:
    """Another process holding the store open until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, pathlib, sys\n"
            f"con = duckdb.connect({str(db_path)!r})\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
    )
    while not ready.exists():
        assert holder.poll() is None, "the process meant to hold the store exited"
        time.sleep(0.02)
    return holder


def test_a_result_is_returned_before_its_commit_and_stored_when_the_store_frees(
    db_path: Path, tmp_path: Path
) -> None:
    from tests.fakes.llm import llm_settings

    settings = llm_settings(None, None, virtuna_db_path=str(db_path))

    async def go() -> tuple[bool, bool, str]:
        async with Engine(settings, db_path=db_path, baseline=FALLBACK_BASELINE) as engine:
            await engine.analyze(DRAFT, store=False)  # the copy is loaded
            holder = _hold(db_path, tmp_path / "holding")
            try:
                result = await engine.analyze(DRAFT, store=True)
                early = await engine.stored(result.analysis_id, timeout_s=0.2)
            finally:
                holder.communicate(b"")
            late = await engine.stored(result.analysis_id)
            return early, late, result.analysis_id

    early, late, analysis_id = asyncio.run(go())
    assert (early, late) == (False, True)
    with connect(db_path) as con:
        assert run(con, "SELECT count(*) FROM analysis_results WHERE id = ?", [analysis_id]) == [
            (1,)
        ]


def test_a_write_that_failed_before_anyone_asked_is_not_reported_stored(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.llm import llm_settings

    def broken(con: object, writes: object) -> None:
        raise duckdb.CatalogException("the table function is missing")

    monkeypatch.setattr("virtuna.store.writer.insert_rows", broken)
    settings = llm_settings(None, None, virtuna_db_path=str(db_path))

    async def go() -> None:
        async with Engine(settings, db_path=db_path, baseline=FALLBACK_BASELINE) as engine:
            result = await engine.analyze(DRAFT, store=True)
            while result.analysis_id in engine._pending:  # it fails before the caller asks
                await asyncio.sleep(0.01)
            with pytest.raises(duckdb.CatalogException, match="table function"):
                await engine.stored(result.analysis_id)
            assert await engine.stored("an analysis never queued here")

    asyncio.run(go())
