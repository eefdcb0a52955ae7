"""Daily analyze limits hold under concurrency: a slot is reserved before the analysis."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fakes.llm import FakeDeepSeek, FakeGemini
from tests.reliability._reserve_worker import reserve_many
from tests.reliability.service_harness import DRAFT, bearer, harness
from virtuna.store import connect
from virtuna.store.users import get_usage, release_analysis, reserve_analysis


def test_twenty_concurrent_requests_of_a_free_user_get_exactly_five(tmp_path: Path) -> None:
    # The fakes hold every answer for a while, so all 20 requests are in flight together.
    with FakeGemini(latency=0.2) as gemini, FakeDeepSeek(latency=0.2) as deepseek:
        api = harness(tmp_path, gemini, deepseek)
        user_id, key = api.user("ana", "free")
        request = {"method": "POST", "url": "/api/analyze", "json": DRAFT, "headers": bearer(key)}
        responses = api.send([request] * 20)
    assert Counter(r.status_code for r in responses) == {200: 5, 429: 15}
    assert all(
        r.json()["error"] == "daily limit reached" for r in responses if r.status_code == 429
    )
    stored = api.rows("SELECT count(*) FROM analysis_results WHERE user_id = ?", [user_id])
    assert stored == [(5,)]
    with connect(api.db_path) as con:
        assert get_usage(con, user_id) == 5


class _BrokenEngine:
    """An engine whose analysis crashes (a bug, not bad input)."""

    async def analyze(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine fell over")

    async def aclose(self) -> None:
        """Nothing to close."""


def test_a_failed_analysis_gives_its_slot_back(tmp_path: Path) -> None:
    api = harness(tmp_path, engine=_BrokenEngine())
    user_id, key = api.user("ben", "free")
    request = {"method": "POST", "url": "/api/analyze", "json": DRAFT, "headers": bearer(key)}
    sse = {**request, "headers": {**bearer(key), "Accept": "text/event-stream"}}
    # One after another: each failure must give its slot back before the next one asks.
    responses = [api.send([r])[0] for r in [request] * 7 + [sse] * 3]
    assert [r.status_code for r in responses] == [500] * 7 + [200] * 3
    assert all(r.json() == {"error": "internal server error"} for r in responses[:7])
    assert all("event: error" in r.text for r in responses[7:])
    with connect(api.db_path) as con:
        assert get_usage(con, user_id) == 0


def test_reservations_from_several_processes_never_exceed_the_limit(tmp_path: Path) -> None:
    db_path = str(tmp_path / "shared.duckdb")
    context = multiprocessing.get_context("spawn")
    granted = context.Value("i", 0)
    workers = [
        context.Process(target=reserve_many, args=(db_path, "user-1", 4, granted)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert granted.value == 5
    with connect(db_path) as con:
        assert get_usage(con, "user-1") == 5
        day = reserve_analysis(con, "user-2", limit=1)
        assert day is not None and reserve_analysis(con, "user-2", limit=1) is None
        release_analysis(con, "user-2", day)
        assert get_usage(con, "user-2") == 0
        release_analysis(con, "user-2", day)  # never below zero
        assert get_usage(con, "user-2") == 0
