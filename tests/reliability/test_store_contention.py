"""Defect: the service starved other processes of the store (issue 11, item 5).

While 50 analyze requests are in flight at the running service (fake LLMs answering after a
latency the fakes decide), an ingest and a job run in OTHER processes: both must finish, and
every analysis the service answered with 200 must be stored. And when another process holds
the store for longer than the lock timeout, analyses still answer, and none of them is lost:
each is stored once the store is free.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.conftest import RAW, REPO, make_item
from tests.fakes.llm import FakeDeepSeek, FakeGemini, llm_settings
from tests.service.conftest import _free_port
from virtuna.config import get_settings
from virtuna.engine.baseline import FALLBACK_BASELINE
from virtuna.engine.llm import Providers
from virtuna.engine.pipeline import Engine
from virtuna.ingest import ingest_file
from virtuna.service import create_app
from virtuna.store import connect
from virtuna.store.users import create_user

CLIENTS = 50
MAX_REQUESTS = 3000  # a bound on the load, far more than the other processes need
BOUND_S = 180.0  # generous: only a store that stays locked comes near it
JOB = (
    "import sys\n"
    "from virtuna.jobs.calculate_trends import calculate_trends\n"
    "print(calculate_trends('latest', 48, db_path=sys.argv[1]))\n"
)


def _items_file(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            vid = str(7400000000000000000 + i)
            url = f"https://www.tiktok.com/@chef_ana/video/{vid}"
            item = make_item(id=vid, createTime=1700000000 + i * 60, webVideoUrl=url)
            handle.write(json.dumps(item) + "\n")
    return path


def _other_process(args: list[str], db: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VIRTUNA_DB_PATH": str(db),
        # What the issue saw: a starved process gives up after its lock timeout.
        "VIRTUNA_DB_LOCK_TIMEOUT_S": "10",
        "VIRTUNA_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


HOLDER = (
    "import sys\n"
    "from virtuna.store import connect\n"
    "with connect(sys.argv[1]):\n"
    "    print('holding', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def test_no_analysis_is_lost_while_another_process_holds_the_store(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUNA_DB_LOCK_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with FakeGemini() as gemini, FakeDeepSeek() as deepseek:
            settings = llm_settings(gemini, deepseek, virtuna_db_path=str(db_path))
            engine = Engine(
                settings,
                db_path=db_path,
                providers=Providers.from_settings(settings),
                baseline=FALLBACK_BASELINE,
            )

            async def analyses() -> list[str]:
                async with engine:
                    results = await asyncio.gather(
                        *(
                            engine.analyze({"content_text": f"Draft number {i}: wait for it"})
                            for i in range(10)
                        )
                    )
                    # The store is still held; let it go, then the engine closes (and flushes).
                    assert holder.stdin is not None
                    holder.stdin.write("\n")
                    holder.stdin.flush()
                    return [r.analysis_id for r in results]

            accepted = asyncio.run(analyses())
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    with connect(db_path) as con:
        stored = {r[0] for r in con.execute("SELECT id FROM analysis_results").fetchall()}
        with_calls = con.execute(
            "SELECT count(DISTINCT analysis_id) FROM llm_calls WHERE status = 'ok'"
        ).fetchone()[0]
    assert set(accepted) == stored
    assert with_calls == len(accepted)


@pytest.fixture
def served(db_path: Path) -> Iterator[str]:
    """The service on a free port, its LLMs fakes answering after 200 ms."""
    with FakeGemini(latency=0.2) as gemini, FakeDeepSeek(latency=0.2) as deepseek:
        settings = llm_settings(
            gemini,
            deepseek,
            virtuna_db_path=str(db_path),
            gemini_timeout_s=120.0,
            deepseek_timeout_s=120.0,
        )
        port = _free_port()
        app = create_app(settings, db_path=db_path)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(30)


@pytest.mark.slow
def test_other_processes_finish_while_fifty_analyses_run(
    tmp_path: Path, db_path: Path, served: str
) -> None:
    ingest_file(RAW / "tiktok_apify_2023_sample.jsonl", db_path=db_path)
    with connect(db_path) as con:
        user_id, key = create_user(con, "load", "pro")
    items = _items_file(tmp_path / "items.jsonl", 5000)
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    captions = [c for c in (json.loads(line)["text"] for line in lines) if len(c.strip()) >= 10]

    async def load() -> tuple[list[str], list[int], dict[str, object]]:
        accepted: list[str] = []
        statuses: list[int] = []
        done = asyncio.Event()
        limit = asyncio.Semaphore(CLIENTS)
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=CLIENTS + 10), timeout=BOUND_S
        ) as client:

            async def one(i: int) -> None:
                async with limit:
                    if done.is_set():
                        return
                    response = await client.post(
                        f"{served}/api/analyze",
                        json={"content_text": captions[i % len(captions)]},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        accepted.append(response.json()["analysis_id"])

            tasks = [asyncio.create_task(one(i)) for i in range(MAX_REQUESTS)]
            # The load is in full flight before the other processes start.
            while len(statuses) < CLIENTS:
                await asyncio.sleep(0.05)
            ingest = _other_process(["-m", "virtuna.cli", "ingest", str(items)], db_path)
            job = _other_process(["-c", JOB, str(db_path)], db_path)
            started = time.monotonic()
            while (ingest.poll() is None or job.poll() is None) and (
                time.monotonic() - started < BOUND_S
            ):
                await asyncio.sleep(0.1)
            during = len(statuses)
            done.set()
            await asyncio.gather(*tasks)
        outcome: dict[str, object] = {"requests while the others ran": during}
        for name, proc in (("ingest", ingest), ("job", job)):
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
            outcome[name] = proc.returncode
            outcome[f"{name} stderr"] = err[-1500:]
        return accepted, statuses, outcome

    accepted, statuses, outcome = asyncio.run(load())

    assert outcome["ingest"] == 0, outcome
    assert outcome["job"] == 0, outcome
    assert set(statuses) == {200}, sorted(set(statuses))
    with connect(db_path) as con:
        stored = {
            r[0]
            for r in con.execute(
                "SELECT id FROM analysis_results WHERE user_id = ?", [user_id]
            ).fetchall()
        }
        videos = con.execute(
            "SELECT count(*) FROM scraped_videos WHERE source_ref = 'items.jsonl'"
        ).fetchone()[0]
        sounds = con.execute("SELECT count(*) FROM trending_sounds").fetchone()[0]
    assert len(accepted) > CLIENTS
    assert set(accepted) <= stored, f"{len(set(accepted) - stored)} accepted but not stored"
    assert videos == 5000
    assert sounds > 0
