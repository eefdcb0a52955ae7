"""Defect: the fault-injection acceptance test depended on the clock (issue 11, item 10).

Timeouts are injected by the fakes (the client's transport raises httpx.ReadTimeout for the
requests the fake chose), with client timeouts far longer than any answer, so the same
requests time out however loaded the machine is. BLAS and OpenMP run one thread each for the
whole test session, so a model fit cannot stall on an oversubscribed machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

from tests.conftest import RAW
from tests.fakes.llm import (
    FakeAnthropic,
    FakeDeepSeek,
    FakeGemini,
    FakeOpenAI,
    llm_settings,
    timeout_transport,
)
from virtuna.engine.baseline import FALLBACK_BASELINE
from virtuna.engine.llm import Providers
from virtuna.engine.pipeline import Engine
from virtuna.store import connect

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def test_blas_and_openmp_run_one_thread_in_tests() -> None:
    import numpy  # noqa: F401  (loads OpenBLAS)
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    from threadpoolctl import threadpool_info

    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == dict.fromkeys(
        THREAD_VARIABLES, "1"
    )
    pools = threadpool_info()
    assert pools and {p["internal_api"]: p["num_threads"] for p in pools} == {
        p["internal_api"]: 1 for p in pools
    }


def test_the_fakes_decide_which_requests_time_out(db_path: Path) -> None:
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    captions = [c for c in (json.loads(line)["text"] for line in lines) if len(c.strip()) >= 10]
    rng = random.Random(11)
    with (
        FakeGemini() as gemini,
        FakeDeepSeek() as deepseek,
        FakeAnthropic() as anthropic,
        FakeOpenAI() as openai,
    ):
        fakes = (gemini, deepseek, anthropic, openai)
        scripts: dict[str, list[str]] = {}
        for fake in fakes:
            kinds = [rng.choice(["ok"] * 5 + ["timeout", "status"]) for _ in range(1000)]
            scripts[fake.provider] = kinds
            for kind in kinds:
                if kind == "ok":
                    fake.answer()
                elif kind == "timeout":
                    fake.timeout()
                else:
                    fake.status(529 if fake is anthropic else 503)
        # Client timeouts no answer comes near: only the fakes' choice makes a timeout.
        settings = llm_settings(
            gemini,
            deepseek,
            anthropic=anthropic,
            openai=openai,
            virtuna_db_path=str(db_path),
            **{f"{fake.provider}_timeout_s": 600.0 for fake in fakes},
            llm_max_retries=1,
            breaker_failure_threshold=1000,
        )

        async def no_sleep(_: float) -> None:
            await asyncio.sleep(0)

        engine = Engine(
            settings,
            db_path=db_path,
            providers=Providers.from_settings(
                settings, transport=timeout_transport(), sleep=no_sleep
            ),
            baseline=FALLBACK_BASELINE,
        )

        async def run_all() -> list[object]:
            limit = asyncio.Semaphore(20)

            async def one(i: int) -> object:
                async with limit:
                    return await engine.analyze({"content_text": captions[i % len(captions)]})

            async with engine:
                return await asyncio.gather(*(one(i) for i in range(100)), return_exceptions=True)

        results = asyncio.run(run_all())
        consumed = {f.provider: 1000 - f.pending for f in fakes}

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert consumed["openai"] > 0  # the chains reached the last provider too
    chosen = {p: scripts[p][: consumed[p]].count("timeout") for p in scripts}
    chosen = {p: n for p, n in chosen.items() if n}
    assert {"gemini", "deepseek", "anthropic"} <= set(chosen)
    with connect(db_path) as con:
        recorded = dict(
            con.execute(
                "SELECT provider, count(*) FROM llm_calls WHERE status = 'timeout' "
                "GROUP BY provider"
            ).fetchall()
        )
    # Exactly the requests the fakes chose timed out: none more (no clock), none fewer.
    assert recorded == chosen
