"""Benchmark: requests per second of POST /api/analyze under 50 concurrent clients.

Run: `.venv/bin/python bench/service.py [--requests 300] [--clients 50] [--latency 0.2]`

The service runs under uvicorn on 127.0.0.1 in this process (its clients in a child process, as
real clients are elsewhere), against the store that
`bench/engine.py` builds from the bundled real data (real captions and their authors, planned
for just after the trend snapshot). Gemini and DeepSeek are the project's HTTP fakes in a
child process (`bench/engine.py`'s RemoteFakes) answering after `--latency` seconds (200 ms by
default). The same run measures one client sending requests one after another, so the
concurrency gain is a ratio measured side by side. Then it checks that nothing was lost:
every request that got a 200 has its analysis stored under the returned id, for its user.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from engine import STORE, RemoteFakes, build_store
from machine import print_footer

from virtuna.config import load_settings
from virtuna.log import configure_logging
from virtuna.service import create_app
from virtuna.store import connect
from virtuna.store.users import create_user

TARGET_GAIN = 30.0  # 50 clients' requests per second against one client's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _send(
    client: httpx.AsyncClient, url: str, key: str, drafts: list[dict[str, Any]], clients: int
) -> tuple[float, list[tuple[int, str | None]]]:
    """Send every draft with at most `clients` in flight; (seconds, [(status, analysis id)])."""
    limit = asyncio.Semaphore(clients)

    async def one(draft: dict[str, Any]) -> tuple[int, str | None]:
        async with limit:
            response = await client.post(
                url, json=draft, headers={"Authorization": f"Bearer {key}"}, timeout=300
            )
            body = response.json() if response.status_code == 200 else {}
            return response.status_code, body.get("analysis_id")

    started = time.perf_counter()
    results = await asyncio.gather(*(one(d) for d in drafts))
    return time.perf_counter() - started, list(results)


def _clients(
    url: str,
    key: str,
    sequential: list[dict[str, Any]],
    batch: list[dict[str, Any]],
    clients: int,
) -> tuple[tuple[float, list], tuple[float, list]]:
    """One client's requests one after another, then `clients` at once (in a child process)."""

    async def run() -> tuple[tuple[float, list], tuple[float, list]]:
        limits = httpx.Limits(max_connections=clients + 10)
        async with httpx.AsyncClient(limits=limits) as client:
            one = await _send(client, url, key, sequential, 1)
            many = await _send(client, url, key, batch, clients)
        return one, many

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    """Build the store, start the service and the fakes, measure, check nothing was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests under concurrency")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--sequential", type=int, default=20, help="requests, one at a time")
    parser.add_argument("--latency", type=float, default=0.2, help="fake LLM latency, seconds")
    args = parser.parse_args(argv)
    configure_logging(load_settings(virtuna_log_level="WARNING"))

    setup = build_store()
    planned = (setup.as_of + timedelta(minutes=30)).isoformat()
    drafts = [{**d, "planned_post_time": planned} for d in setup.drafts]
    with connect(STORE) as con:
        user_id, key = create_user(con, f"bench-{int(time.time())}", "pro")
    fakes = RemoteFakes()
    fakes.set_latency(args.latency)
    port = _free_port()
    app = create_app(fakes.settings(), db_path=STORE)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/api/analyze"
    while not server.started:
        time.sleep(0.05)
    try:
        # The clients run in their own process, as real clients would: in this one their HTTP
        # client's CPU would be taken from the service's interpreter.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as clients:
            (one_s, one_results), (many_s, many_results) = clients.submit(
                _clients,
                url,
                key,
                drafts[: args.sequential],
                drafts[args.sequential : args.sequential + args.requests],
                args.clients,
            ).result()
    finally:
        server.should_exit = True
        thread.join(30)
        fakes.close()

    one_rate = len(one_results) / one_s
    many_rate = len(many_results) / many_s
    statuses = sorted({s for s, _ in many_results + one_results})
    accepted = [i for s, i in one_results + many_results if s == 200 and i]
    with connect(STORE) as con:
        stored = {
            r[0]
            for r in con.execute(
                "SELECT id FROM analysis_results WHERE user_id = ?", [user_id]
            ).fetchall()
        }
    lost = [i for i in accepted if i not in stored]
    print()
    print(f"LLM fakes at {args.latency * 1000:.0f} ms; statuses seen: {statuses}")
    print(f"1 client, {len(one_results)} requests one after another: {one_rate:.2f} req/s")
    gain = many_rate / one_rate
    print(
        f"{args.clients} clients, {len(many_results)} requests: {many_rate:.2f} req/s "
        f"({gain:.1f}x one client; target >= {TARGET_GAIN:g}x)  "
        f"{'PASS' if gain >= TARGET_GAIN else 'MISS  <-- target missed'}"
    )
    complete = not lost and len(accepted) == len(one_results) + len(many_results)
    print(
        f"nothing lost: {len(accepted)} accepted requests, {len(lost)} without a stored "
        f"analysis  {'PASS' if complete else 'MISS'}"
    )
    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
