"""Soak: the service under 50 clients while an ingest and a job share its store.

Run: `.venv/bin/python bench/soak.py [--requests 200] [--clients 50] [--latency 0.2]
[--items 20000]`

The store is `bench/engine.py`'s (every file of data/raw, one trend snapshot). The service runs
under uvicorn on 127.0.0.1 in this process with Gemini and DeepSeek as the project's fakes in
a child process, answering after `--latency` seconds. First the baseline: `virtuna ingest` of
`--items` Apify items (`bench/ingest.py`'s work file: the real sample items with distinct ids)
and `virtuna jobs run calculate-trends` (Papermill, the real job), each in its own process,
against a copy of the store with nothing else running. Then the same two processes against
the service's store while `--requests` analyze requests arrive from `--clients` clients.
It prints what the clients saw (accepted, 5xx, 429, store-lock errors surfaced in a response,
a warning or the processes' output), analyses stored per accepted request, and the ingest's
and the job's wall time under load against their baseline of the same run.
Targets: 0 5xx, 0 lock errors, 1.00 stored per accepted request, ingest and job finish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from engine import ROOT, STORE, WORK, RemoteFakes, build_store
from ingest import build_work_file
from machine import print_footer
from service import _free_port

from virtuna.config import load_settings
from virtuna.log import configure_logging
from virtuna.service import create_app
from virtuna.store import connect
from virtuna.store.users import create_user

LOCK_WORDS = ("stayed locked", "StoreLockedError", "Could not set lock", "store is busy")


@dataclass
class Finished:
    """One other process: its exit code, wall time and output."""

    name: str
    returncode: int
    seconds: float
    output: str

    @property
    def lock_errors(self) -> int:
        """Lines of its output that name a store lock it could not get."""
        return sum(any(w in line for w in LOCK_WORDS) for line in self.output.splitlines())


def _start(name: str, args: list[str], db: Path) -> tuple[str, subprocess.Popen[str], float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VIRTUNA_DB_PATH": str(db),
        "VIRTUNA_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtuna.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return name, proc, time.perf_counter()


def _others(db: Path, items: Path) -> list[tuple[str, subprocess.Popen[str], float]]:
    return [
        _start("ingest", ["ingest", str(items)], db),
        _start("job", ["jobs", "run", "calculate-trends", "-p", "as_of", "latest"], db),
    ]


def _wait(started: list[tuple[str, subprocess.Popen[str], float]]) -> dict[str, Finished]:
    done = {}
    for name, proc, t0 in started:
        output, _ = proc.communicate()
        done[name] = Finished(name, proc.returncode, time.perf_counter() - t0, output)
    return done


async def _load(url: str, key: str, drafts: list[dict[str, Any]], clients: int) -> list[Any]:
    """Send every draft with at most `clients` in flight: [(status, body)]."""
    limit = asyncio.Semaphore(clients)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 10)) as client:

        async def one(draft: dict[str, Any]) -> tuple[int, Any]:
            async with limit:
                response = await client.post(
                    url, json=draft, headers={"Authorization": f"Bearer {key}"}, timeout=600
                )
                try:
                    return response.status_code, response.json()
                except ValueError:
                    return response.status_code, response.text

        return list(await asyncio.gather(*(one(d) for d in drafts)))


def main(argv: list[str] | None = None) -> int:
    """Baseline alone, then the same processes beside the loaded service; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="analyze requests")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--latency", type=float, default=0.2, help="fake LLM latency, seconds")
    parser.add_argument("--items", type=int, default=20000, help="items the ingest reads")
    args = parser.parse_args(argv)
    configure_logging(load_settings(virtuna_log_level="WARNING"))

    setup = build_store()
    items = build_work_file(args.items)
    planned = (setup.as_of + timedelta(minutes=30)).isoformat()
    drafts = [{**d, "planned_post_time": planned} for d in setup.drafts[: args.requests]]
    with connect(STORE) as con:
        user_id, key = create_user(con, f"soak-{int(time.time())}", "pro")

    alone_store = WORK / "soak_alone.duckdb"
    shutil.copy(STORE, alone_store)
    alone = _wait(_others(alone_store, items))
    alone_store.unlink(missing_ok=True)

    fakes = RemoteFakes()
    fakes.set_latency(args.latency)
    port = _free_port()
    app = create_app(fakes.settings(), db_path=STORE)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:

        async def run() -> tuple[list[Any], dict[str, Finished], float]:
            t0 = time.perf_counter()
            load = asyncio.create_task(
                _load(f"http://127.0.0.1:{port}/api/analyze", key, drafts, args.clients)
            )
            await asyncio.sleep(0.5)  # the clients are in flight before the others start
            others = await asyncio.to_thread(lambda: _wait(_others(STORE, items)))
            results = await load
            return results, others, time.perf_counter() - t0

        results, loaded, seconds = asyncio.run(run())
    finally:
        server.should_exit = True
        thread.join(60)
        fakes.close()

    accepted = [body["analysis_id"] for status, body in results if status == 200]
    server_errors = sum(status >= 500 for status, _ in results)
    limited = sum(status == 429 for status, _ in results)
    surfaced = sum(any(w in str(body) for w in LOCK_WORDS) for _, body in results) + sum(
        f.lock_errors for f in loaded.values()
    )
    with connect(STORE) as con:
        stored = {
            r[0]
            for r in con.execute(
                "SELECT id FROM analysis_results WHERE user_id = ?", [user_id]
            ).fetchall()
        }
    per_accepted = sum(i in stored for i in accepted) / len(accepted) if accepted else 0.0

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print()
    print(
        f"{len(results)} analyze requests from {args.clients} clients, LLM fakes at "
        f"{args.latency * 1000:.0f} ms, in {seconds:.1f} s"
    )
    print(f"accepted (200): {len(accepted)}")
    print(f"5xx: {server_errors}  {verdict(server_errors == 0)}")
    print(f"429: {limited}")
    print(f"store-lock errors surfaced: {surfaced}  {verdict(surfaced == 0)}")
    print(f"analyses stored per accepted request: {per_accepted:.2f}  {verdict(per_accepted == 1)}")
    for name in ("ingest", "job"):
        a, b = alone[name], loaded[name]
        ok = a.returncode == 0 and b.returncode == 0
        print(
            f"{name}: alone {a.seconds:.1f} s (exit {a.returncode}), beside the service "
            f"{b.seconds:.1f} s (exit {b.returncode}): {b.seconds / a.seconds:.2f}x alone  "
            f"{verdict(ok)}"
        )
        if not ok:
            print("   " + (b.output or a.output).strip().splitlines()[-1][:300])
    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
