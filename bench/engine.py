"""Benchmark: the prediction engine's own cost, its concurrency, batch scoring and sound matching.

Run: `.venv/bin/python bench/engine.py [--sequential 200] [--concurrent 100] [--batch 500]
[--predict 50] [--match 300] [--repeat 3]`

Everything runs against one store built for the run under bench/.work from the bundled real
data: every file in data/raw ingested with `virtuna.ingest.ingest_file`, one trend snapshot
(`calculate_trends("latest", 48)`) and a calibration baseline computed from it. The drafts are
real captions (`description` of data/raw/tiktok_trending_2025.csv, at least 10 characters
after trimming and valid as `AnalysisInput`) with their real authors as `creator_handle`, all
analysed as of the snapshot, so rules, trends and creator reads hit real rows. The LLMs are the
project's HTTP fakes (`tests/fakes/llm.py`), run in a child process: a remote LLM does not share
the engine's interpreter, and in-process fakes would compete with the engine for the GIL. The
engine uses the production LLM timeouts (15 s Gemini, 90 s DeepSeek), not the tests' 2 s.

1. Engine overhead: `Engine.analyze(..., store=True)` on `--sequential` captions one after the
   other with instant fakes (latency 0): p50/p99 per request, CPU per request and the median
   stage timings. This is what the engine costs on top of the LLMs.
2. Concurrency: `--concurrent` analyses at once (`asyncio.gather`, one Engine) with the fakes
   at 200 ms latency, against one analysis at the same latency measured in the same run, all
   with store=True (the write is a small part of an analysis). Each analysis makes 3 LLM
   requests in two waves (Gemini and the rules batch together, then the DeepSeek reasoning),
   so one takes ~400 ms plus the engine's own time. The target is that the whole batch
   finishes within 1.2x of the single analysis (best of 2 batches). To tell the engine from
   the fakes: the CPU time of both processes and the kernel's listen-queue overflow count are
   printed; the same requests (bodies recorded from real analyses) are sent straight at the
   fakes in the same two waves; the same analyses run with no LLM configured (the engine
   alone); and, for reference, the batch runs once with the fakes inside this process, as the
   tests run them. The child's fakes get a listen backlog of 1024 instead of socketserver's 5
   (see `serve_fakes`); the in-process reference keeps the 5.
3. Batch vs predict: `score_batch` on `--batch` captions against the public `predict(...)` (no
   LLM keys configured: it builds an engine per call and stores the result) in a loop on the
   first `--predict` of them, per post. Target: the batch at least 10x faster per post. Both
   score without LLMs, so their scores must agree; the agreement is printed.
4. Sound matching: `virtuna.engine.fuzzy.match_sounds` (rapidfuzz Jaro-Winkler over word
   n-grams) against a pure-Python matcher written here (same word windows, same substring rule,
   same 0.7 threshold, a textbook Jaro-Winkler with Winkler's 0.7 boost threshold) on the first
   `--match` captions against the snapshot's top 50 trending sounds. Both must find the same
   sounds on at least 95 % of captions; the speed ratio is printed.

Timings are wall clock (`time.perf_counter`); cheap measurements are the best of `--repeat`
runs, the long loops run once and report their distribution. The script always exits 0: it is
a measurement, not a test; a missed target is printed as MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import rapidfuzz
from machine import peak_rss_mib
from pydantic import ValidationError

from virtuna import predict
from virtuna.config import Settings, get_settings, load_settings
from virtuna.engine.baseline import CalibrationBaseline, compute_baseline, save_baseline
from virtuna.engine.batch import score_batch
from virtuna.engine.fuzzy import match_sounds
from virtuna.engine.pipeline import Engine
from virtuna.engine.schema import AnalysisInput, PredictionResult
from virtuna.ingest import data_files, ingest_file
from virtuna.jobs.calculate_trends import calculate_trends
from virtuna.jobs.retrain_ml import retrain_ml
from virtuna.log import configure_logging
from virtuna.ml.estimators import baseline_kind
from virtuna.store import connect, mark_changed, transaction
from virtuna.store.online import refresh_online
from virtuna.store.trends import top_sounds

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes is imported from the repository root
    sys.path.insert(0, str(ROOT))

RAW = ROOT / "data" / "raw"
CAPTIONS = RAW / "tiktok_trending_2025.csv"
WORK = ROOT / "bench" / ".work"
STORE = WORK / "engine_store.duckdb"
BASELINE_FILE = STORE.with_name("calibration-baseline.json")  # where the engine looks for it

LATENCY_S = 0.2  # the fakes' latency in part 2
FAKE_BACKLOG = 1024  # listen backlog of the fakes in the child process (socketserver: 5)
TARGET_P50_S = 0.015  # engine overhead per analysis with instant fakes, store write included
TARGET_P99_S = 0.040
TARGET_CONCURRENT = 2.0  # the concurrent batch within this many times one analysis
TARGET_NO_LLM_S = 0.5  # the same batch with no LLM at all
TARGET_GROWTH = 1.2  # overhead p50 at 10x the videos within this many times the 1x figure
GROWTH = 10
TARGET_BATCH = 10.0  # score_batch at least this many times faster per post than predict
TARGET_AGREEMENT = 0.95  # share of captions where both matchers find the same sounds
THRESHOLD = 0.7  # virtuna.engine.fuzzy.DEFAULT_THRESHOLD
TOP_SOUNDS = 50  # virtuna.engine.trends.TOP_SOUNDS
_REPLAY_HEADERS = ("authorization", "x-goog-api-key", "content-type")
EXPECTED_WARNINGS = ("No calibration for signal profile",)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS  <-- target missed"


def _check(ok: bool, message: str) -> None:
    """Stop the benchmark when a measured method did not do the work it is timed for."""
    if not ok:
        raise SystemExit(f"benchmark check failed: {message}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


# --------------------------------------------------------------------------- store and drafts


@dataclass
class Setup:
    """The store built for this run and the drafts read from the captions file."""

    as_of: datetime
    drafts: list[dict[str, Any]]  # content_text and creator_handle
    baseline: CalibrationBaseline
    sounds: list[tuple[str, str]]  # (sound_key, sound_name) of the top trending sounds


def _remove_store() -> None:
    for path in (STORE, STORE.with_name(STORE.name + ".wal"), BASELINE_FILE):
        path.unlink(missing_ok=True)


def build_store() -> Setup:
    """Ingest data/raw into a fresh store, compute trends and a baseline, read the captions."""
    _remove_store()
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    videos = 0
    for path, ref in data_files(RAW):
        report = ingest_file(path, db_path=STORE, source_ref=ref)
        _check(report.balanced and report.read > 0, f"ingest of {ref}: {report}")
        videos += report.inserted
    trends = calculate_trends("latest", 48, db_path=str(STORE))
    _check(trends.sounds > 0, f"no trending sounds in the snapshot: {trends}")
    with connect(STORE) as con:
        baseline = compute_baseline(con)
        sounds_frame = top_sounds(con, trends.as_of, limit=TOP_SOUNDS)
        (rules,) = con.execute("SELECT count(*) FROM rule_library WHERE is_active").fetchall()[0]
    save_baseline(baseline, BASELINE_FILE)
    sounds = list(zip(sounds_frame["sound_key"], sounds_frame["sound_name"], strict=True))
    # Both tier models, of the baseline kinds (fitted in seconds, served through the same
    # path as a learned kind): the ML signal is part of every analysis, as in production.
    served = []
    for scheme in ("views_quintile", "creator_relative"):
        trained = retrain_ml(db_path=STORE, scheme=scheme, kind=baseline_kind(scheme))
        _check(trained.status == "promoted", f"{scheme} model not promoted: {trained.reason}")
        served.append(f"{scheme}: {trained.served_kind}")

    frame = pd.read_csv(CAPTIONS, usecols=["author", "description"], dtype=str)
    drafts: list[dict[str, Any]] = []
    short = invalid = 0
    for author, description in zip(frame["author"], frame["description"], strict=True):
        if not isinstance(description, str) or len(description.strip()) < 10:
            short += 1
            continue
        draft = {
            "content_text": description,
            "creator_handle": author if isinstance(author, str) else None,
        }
        try:
            AnalysisInput.model_validate(draft)
        except ValidationError:
            invalid += 1  # e.g. a caption that is one repeated emoji ("looks like spam")
            continue
        drafts.append(draft)
    print(
        f"store: {STORE.relative_to(ROOT)} -- {videos:,} videos from {RAW.relative_to(ROOT)}, "
        f"{rules} active rules, trend snapshot as of {trends.as_of:%Y-%m-%d %H:%M} "
        f"({trends.window_hours} h: {trends.videos_in_window:,} videos, {trends.sounds} sounds, "
        f"{trends.hashtags:,} hashtags); tier models {', '.join(served)}; built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"drafts: {len(drafts):,} captions of {CAPTIONS.name} (dropped {short:,} under 10 "
        f"characters, {invalid} rejected by validation), analysed as of the snapshot"
    )
    return Setup(trends.as_of, drafts, baseline, sounds)


def _take(drafts: list[dict[str, Any]], start: int, count: int) -> list[dict[str, Any]]:
    chosen = drafts[start : start + count]
    _check(len(chosen) == count, f"only {len(drafts)} captions; need {start + count}")
    return chosen


# --------------------------------------------------------------------------- fakes


def serve_fakes(conn: Connection, backlog: int) -> None:
    """Child process: run FakeGemini and FakeDeepSeek and obey the parent's commands.

    The fakes' server class keeps socketserver's listen backlog of 5, so a burst of new
    connections overflows it and the kernel drops SYNs (the client retries after 1 s) or
    resets connections. Here, in this child only, the backlog is raised to `backlog` so the
    fakes answer a burst at once; part 2 also runs the fakes as shipped, for comparison.
    """
    from tests.fakes import llm

    server_class = getattr(llm, "_Server", None)
    if server_class is not None:
        server_class.request_queue_size = backlog
    with llm.FakeGemini() as gemini, llm.FakeDeepSeek() as deepseek:
        conn.send((gemini.api_key, gemini.base_url, deepseek.api_key, deepseek.base_url))
        while True:
            command, argument = conn.recv()
            if command == "latency":
                gemini.latency = deepseek.latency = float(argument)
                conn.send(None)
            elif command == "stats":
                conn.send((time.process_time(), gemini.served, deepseek.served))
            elif command == "samples":  # one recorded request per kind, as plain values
                samples = {}
                for fake in (gemini, deepseek):
                    for request in list(fake.requests):
                        body = request.json if isinstance(request.json, dict) else {}
                        kind = (
                            "gemini"
                            if fake is gemini
                            else ("rules" if body.get("model") == "deepseek-chat" else "reasoning")
                        )
                        headers = {k: v for k, v in request.headers.items() if k in _REPLAY_HEADERS}
                        samples.setdefault(kind, (fake.base_url + request.path, headers, body))
                conn.send(samples)
            else:
                conn.send(None)
                return


class RemoteFakes:
    """The fakes in a child process, as seen from the benchmark."""

    def __init__(self, backlog: int = FAKE_BACKLOG) -> None:
        """Start the child and wait for its addresses."""
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_fakes, args=(child, backlog), daemon=True)
        self._process.start()
        self.gemini_key, self.gemini_url, self.deepseek_key, self.deepseek_url = self._conn.recv()

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def set_latency(self, seconds: float) -> None:
        """Both fakes answer after this many seconds."""
        self._ask("latency", seconds)

    def stats(self) -> tuple[float, int, int]:
        """(child CPU seconds, Gemini requests served, DeepSeek requests served)."""
        return self._ask("stats")  # type: ignore[no-any-return]

    def samples(self) -> dict[str, tuple[str, dict[str, str], dict[str, Any]]]:
        """One recorded request (url, headers, body) per kind: gemini, rules, reasoning."""
        return self._ask("samples")  # type: ignore[no-any-return]

    def settings(self) -> Settings:
        """Engine settings pointing at the fakes (production timeouts and retries)."""
        return load_settings(
            gemini_api_key=self.gemini_key,
            gemini_base_url=self.gemini_url,
            deepseek_api_key=self.deepseek_key,
            deepseek_base_url=self.deepseek_url,
            virtuna_db_path=STORE,
            virtuna_log_level="WARNING",
        )

    def close(self) -> None:
        """Stop the child."""
        try:
            self._ask("stop")
        finally:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)


def listen_overflows() -> int | None:
    """The kernel's count of TCP listen-queue overflows (Linux, system-wide), else None."""
    try:
        lines = Path("/proc/net/netstat").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(counters["ListenOverflows"]) if "ListenOverflows" in counters else None
    return None


def _overflows_since(before: int | None) -> str:
    after = listen_overflows()
    return "n/a" if before is None or after is None else f"{after - before:,}"


def _unexpected(results: Iterable[PredictionResult]) -> Counter[str]:
    """Warnings beyond the expected "no tier model" ones: a degraded stage shows up here."""
    return Counter(
        w
        for r in results
        for w in r.warnings
        if not any(w.startswith(e) for e in EXPECTED_WARNINGS)
    )


def _all_signals(result: PredictionResult) -> bool:
    """Gemini, DeepSeek, rules, trends and the tier model all answered."""
    wanted = ("behavioral", "gemini", "ml", "rules", "trends")
    return all(result.signals_available.get(name) for name in wanted)


# --------------------------------------------------------------------------- 1. overhead


async def _sequential(
    engine: Engine, drafts: list[dict[str, Any]], as_of: datetime
) -> tuple[list[float], list[PredictionResult], float]:
    latencies: list[float] = []
    results: list[PredictionResult] = []
    cpu = time.process_time()
    for draft in drafts:
        started = time.perf_counter()
        result = await engine.analyze(draft, store=True, as_of=as_of)
        latencies.append(time.perf_counter() - started)
        results.append(result)
    return latencies, results, time.process_time() - cpu


def part_overhead(setup: Setup, fakes: RemoteFakes, count: int, title: str = "1.") -> float:
    """Engine.analyze(store=True) one after the other with instant fakes; returns the p50."""
    print()
    print(f"{title} Engine overhead: {count} sequential analyses, store=True, fake LLMs at 0 ms")
    fakes.set_latency(0.0)
    drafts = _take(setup.drafts, 0, count)
    warmup = setup.drafts[-5:]
    with connect(STORE) as con:
        (stored_before,) = con.execute("SELECT count(*) FROM analysis_results").fetchall()[0]

    async def run() -> tuple[list[float], list[PredictionResult], float]:
        async with Engine(fakes.settings(), db_path=STORE, baseline=setup.baseline) as engine:
            await _sequential(engine, warmup, setup.as_of)  # connections, caches, imports
            return await _sequential(engine, drafts, setup.as_of)

    _, gemini_before, deepseek_before = fakes.stats()
    latencies, results, cpu = asyncio.run(run())
    _, gemini_after, deepseek_after = fakes.stats()
    with connect(STORE) as con:
        (stored_after,) = con.execute("SELECT count(*) FROM analysis_results").fetchall()[0]
    stored = int(stored_after) - int(stored_before)
    _check(stored == count + len(warmup), f"{stored} analyses stored, expected {count + 5}")
    complete = sum(_all_signals(r) for r in results)
    _check(
        gemini_after - gemini_before == count + len(warmup),
        f"Gemini fake served {gemini_after - gemini_before} requests for {count + 5} analyses",
    )

    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p99 = statistics.median(latencies), quantiles[98]
    print(
        f"   per request: p50 {_ms(p50)}, p99 {_ms(p99)}, mean {_ms(statistics.fmean(latencies))}"
        f", max {_ms(max(latencies))}; CPU {_ms(cpu / count)} per request (this process)"
    )
    print(
        f"   p50 target <= {_ms(TARGET_P50_S)}  {_verdict(p50 <= TARGET_P50_S)}; "
        f"p99 target <= {_ms(TARGET_P99_S)}  {_verdict(p99 <= TARGET_P99_S)}"
    )
    print(
        f"   {complete}/{count} analyses with all five signals (gemini, behavioral, ml, rules, "
        f"trends); {stored} rows stored; fakes served {gemini_after - gemini_before} Gemini and "
        f"{deepseek_after - deepseek_before} DeepSeek requests"
    )
    unexpected = _unexpected(results)
    if unexpected:
        print(f"   unexpected warnings: {dict(unexpected.most_common(5))}")
    found = sum(bool(r.creator.get("found")) for r in results)
    matched = sum(bool(r.matched_sounds) for r in results)
    print(f"   real reads: creator found for {found}/{count}, a trending sound matched {matched}")

    def median_stage(name: str) -> float:
        return statistics.median(r.stage_timings.get(name, 0.0) for r in results) / 1000

    # latency_ms is taken before the store write, so wall time minus it is the write.
    writes = [lat - r.latency_ms / 1000 for lat, r in zip(latencies, results, strict=True)]
    parts = ", ".join(
        f"{name} {_ms(median_stage(name))}"
        for name in ("rule_loading", "creator_context", "trend_enrichment", "calibration")
    )
    print(
        f"   median stages: store_context {_ms(median_stage('store_context'))} ({parts}); "
        f"gemini_analysis {_ms(median_stage('gemini_analysis'))}, rule_scoring "
        f"{_ms(median_stage('rule_scoring'))}, deepseek_reasoning "
        f"{_ms(median_stage('deepseek_reasoning'))}; store write {_ms(statistics.median(writes))}"
    )
    opens: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        with connect(STORE):
            pass
        opens.append(time.perf_counter() - started)
    with connect(STORE):  # another connection keeps the database open
        held: list[float] = []
        for _ in range(5):
            started = time.perf_counter()
            with connect(STORE):
                pass
            held.append(time.perf_counter() - started)
    print(
        f"   for scale: one store connect() takes {_ms(min(opens))}, or {_ms(min(held))} while "
        "another connection holds the file open (the engine reads an in-memory copy and its "
        "writer keeps the store open between writes that come close together)"
    )
    return p50


# --------------------------------------------------------------------------- 2. concurrency


def _replay(samples: dict[str, tuple[str, dict[str, str], dict[str, Any]]], n: int) -> float:
    """n analyses' requests straight at the fakes: n Gemini + n rules at once, then n reasoning.

    Each request runs in its own thread on its own new connection (http.client), so the
    client adds next to nothing and what is measured is how fast the fakes answer a burst.
    """

    def send(kind: str, failures: list[str]) -> None:
        url, headers, body = samples[kind]
        parsed = urlsplit(url)
        connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=60)
        try:
            connection.request("POST", parsed.path, body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{kind}: HTTP {response.status}")
        except OSError as exc:
            failures.append(f"{kind}: {type(exc).__name__}")
        finally:
            connection.close()

    def wave(kinds: list[str]) -> list[str]:
        failures: list[str] = []
        threads = [threading.Thread(target=send, args=(k, failures)) for k in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return failures

    started = time.perf_counter()
    failures = wave(["gemini", "rules"] * n) + wave(["reasoning"] * n)
    seconds = time.perf_counter() - started
    _check(not failures, f"replayed requests failed: {Counter(failures).most_common(3)}")
    return seconds


async def _replay_httpx(
    samples: dict[str, tuple[str, dict[str, str], dict[str, Any]]], n: int
) -> tuple[float, float]:
    """n analyses' requests through httpx as the engine sends them (one AsyncClient per
    provider, Gemini and rules at once, then reasoning), and nothing else: (wall, CPU) seconds.

    The engine cannot beat this in one process: it is the HTTP client's own floor."""
    pools = {kind: httpx.AsyncClient(timeout=httpx.Timeout(60.0)) for kind in samples}

    async def call(kind: str) -> None:
        url, headers, body = samples[kind]
        response = await pools[kind].post(url, json=body, headers=headers)
        response.raise_for_status()
        response.json()

    async def analysis() -> None:
        await asyncio.gather(call("gemini"), call("rules"))
        await call("reasoning")

    try:
        await analysis()  # open one connection per provider before timing
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(analysis() for _ in range(n)))
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        for pool in pools.values():
            await pool.aclose()


async def _concurrently(
    settings: Settings, setup: Setup, drafts: list[dict[str, Any]]
) -> tuple[float, float, list[PredictionResult]]:
    async with Engine(settings, db_path=STORE, baseline=setup.baseline) as engine:
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(engine.analyze(d, store=True, as_of=setup.as_of) for d in drafts)
        )
        return time.perf_counter() - started, time.process_time() - cpu, list(results)


def _median_stages(results: list[PredictionResult], names: Iterable[str]) -> str:
    return ", ".join(
        f"{name} {_ms(statistics.median(r.stage_timings.get(name, 0.0) for r in results) / 1000)}"
        for name in names
    )


def part_concurrency(setup: Setup, fakes: RemoteFakes, count: int, repeat: int) -> None:
    """count analyses at once against one, fakes at 200 ms."""
    print()
    print(
        f"2. Concurrency: {count} analyses at once (asyncio.gather, one Engine) vs one analysis;"
        f" fake LLMs at {LATENCY_S * 1000:.0f} ms, store=True"
    )
    fakes.set_latency(LATENCY_S)
    single_draft = _take(setup.drafts, 0, 1)[0]
    drafts = _take(setup.drafts, 1, count)
    settings = fakes.settings()

    async def one() -> tuple[float, PredictionResult]:
        async with Engine(settings, db_path=STORE, baseline=setup.baseline) as engine:
            await engine.analyze(single_draft, store=True, as_of=setup.as_of)  # warm the pool
            best: tuple[float, PredictionResult] | None = None
            for _ in range(repeat):
                started = time.perf_counter()
                result = await engine.analyze(single_draft, store=True, as_of=setup.as_of)
                seconds = time.perf_counter() - started
                if best is None or seconds < best[0]:
                    best = (seconds, result)
            assert best is not None
            return best

    single, single_result = asyncio.run(one())
    _check(_all_signals(single_result), f"single analysis degraded: {single_result.warnings}")
    write = single - single_result.latency_ms / 1000
    print(
        f"   one analysis: {_ms(single)} (best of {repeat}); the store write is {_ms(write)} of "
        "it, so writes do not dominate and store=True is kept throughout"
    )

    runs = min(repeat, 2)  # each run takes seconds; two show the spread
    best: tuple[float, float, list[PredictionResult], float] | None = None
    for attempt in range(runs):
        fake_cpu_before = fakes.stats()[0]
        overflows = listen_overflows()
        wall, cpu, results = asyncio.run(_concurrently(settings, setup, drafts))
        fake_cpu = fakes.stats()[0] - fake_cpu_before
        print(
            f"   {count} at once, run {attempt + 1}/{runs}: {wall:.3f} s (this process "
            f"{cpu:.2f} s CPU = {cpu / wall:.2f} cores busy; the fakes {fake_cpu:.2f} s CPU; "
            f"listen-queue overflows (system-wide) {_overflows_since(overflows)})"
        )
        if best is None or wall < best[0]:
            best = (wall, cpu, results, fake_cpu)
    assert best is not None
    wall, cpu, results, fake_cpu = best
    complete = sum(_all_signals(r) for r in results)
    unexpected = _unexpected(results)
    ratio = wall / single
    print(
        f"   {count} at once: {wall:.3f} s = {ratio:.2f}x one analysis "
        f"(target <= {TARGET_CONCURRENT:g}x)  {_verdict(ratio <= TARGET_CONCURRENT)}"
    )
    latencies = sorted(r.latency_ms for r in results)
    print(
        f"   {complete}/{count} with all four signals"
        + (f"; unexpected warnings: {dict(unexpected.most_common(5))}" if unexpected else "")
        + f"; latency inside the batch: min {latencies[0]:,.0f} ms, median "
        f"{statistics.median(latencies):,.0f} ms, max {latencies[-1]:,.0f} ms"
    )
    stages = ("store_context", "gemini_analysis", "rule_scoring", "deepseek_reasoning")
    print(f"   median stages in the batch: {_median_stages(results, stages)}")
    print(f"   (one analysis alone: {_median_stages([single_result], stages)})")

    # Who is the bottleneck? The fakes alone, then the engine alone.
    replay = min(_replay(fakes.samples(), count) for _ in range(repeat))
    print(
        f"   the fakes alone: the same {3 * count} requests (bodies recorded from real "
        f"analyses) sent straight at them in the engine's two waves take {replay:.3f} s "
        f"(ideal {2 * LATENCY_S:.1f} s)"
    )
    floor, floor_cpu = min(asyncio.run(_replay_httpx(fakes.samples(), count)) for _ in range(2))
    print(
        f"   the HTTP client alone: the same requests through httpx (one pool per provider, "
        f"no engine) take {floor:.3f} s = {floor / single:.2f}x the single analysis, "
        f"{floor_cpu:.2f} s CPU"
    )
    no_llm = load_settings(virtuna_db_path=STORE, virtuna_log_level="WARNING")
    alone, alone_cpu, alone_results = asyncio.run(_concurrently(no_llm, setup, drafts))
    _check(all(r.rule_score is not None for r in alone_results), "an analysis without LLMs failed")
    print(
        f"   the engine alone: the same {count} analyses at once with no LLM configured (no "
        f"HTTP at all) take {alone:.3f} s = {alone / single:.2f}x the single analysis with LLMs "
        f"({alone_cpu:.2f} s CPU); target <= {TARGET_NO_LLM_S:g} s  "
        f"{_verdict(alone <= TARGET_NO_LLM_S)}"
    )
    # One interpreter runs one thread of Python at a time: the batch cannot finish before the
    # HTTP floor plus whatever CPU the engine adds beyond it.
    budget = max(TARGET_CONCURRENT * single - floor, 0.0) / count
    print(
        f"   so the {TARGET_CONCURRENT:g}x target leaves the engine {budget * 1000:.1f} ms of CPU "
        f"per analysis on top of the HTTP client; it uses {alone_cpu / count * 1000:.1f} ms "
        f"without HTTP, and {(cpu - floor_cpu) / count * 1000:.1f} ms beyond the client's own "
        "CPU in the batch above"
    )

    from tests.fakes.llm import FakeDeepSeek, FakeGemini, llm_settings

    overflows = listen_overflows()
    with FakeGemini(latency=LATENCY_S) as gemini, FakeDeepSeek(latency=LATENCY_S) as deepseek:
        local = llm_settings(
            gemini,
            deepseek,
            gemini_timeout_s=15.0,
            deepseek_timeout_s=90.0,
            virtuna_db_path=STORE,
            virtuna_log_level="WARNING",
        )
        in_process, _, local_results = asyncio.run(_concurrently(local, setup, drafts))
    print(
        f"   for reference, the fakes as the tests run them (in this process, listen backlog "
        f"5): {count} at once take {in_process:.3f} s = {in_process / single:.2f}x the single "
        f"analysis, listen-queue overflows {_overflows_since(overflows)} "
        f"({sum(_all_signals(r) for r in local_results)}/{count} with all four signals)"
    )


# --------------------------------------------------------------------------- 5. growth


def grow_store(factor: int) -> int:
    """Replicate every stored video `factor - 1` times with new ids and new authors (the
    store grows, the drafts' own creators do not), then rebuild the online tables."""
    with connect(STORE) as con:
        columns = [r[0] for r in con.execute("DESCRIBE scraped_videos").fetchall()]
        renamed = {
            "platform_video_id": "platform_video_id || '~' || $k",
            "author_handle": "author_handle || '~' || $k",
            "author_id": "author_id || '~' || $k",
            "raw": "NULL",  # the source item is kept once; copies need no audit trail
        }
        select = ", ".join(renamed.get(c, c) for c in columns)
        with transaction(con):
            for k in range(1, factor):
                con.execute(
                    f"INSERT INTO scraped_videos SELECT {select} FROM scraped_videos "
                    "WHERE NOT contains(platform_video_id, '~')",
                    {"k": str(k)},
                )
            refresh_online(con)
        mark_changed(con)
        (videos,) = con.execute("SELECT count(*) FROM scraped_videos").fetchall()[0]
    return int(videos)


def part_growth(setup: Setup, fakes: RemoteFakes, count: int, p50_1x: float) -> None:
    """Part 1 again with the store at GROWTH times its videos."""
    print()
    started = time.perf_counter()
    videos = grow_store(GROWTH)
    print(
        f"5. Growth: the store replicated to {GROWTH}x ({videos:,} videos, new ids and authors, "
        f"online tables rebuilt) in {time.perf_counter() - started:.1f} s"
    )
    p50 = part_overhead(setup, fakes, count, title="   5.")
    ratio = p50 / p50_1x
    print(
        f"   engine overhead p50 at {GROWTH}x: {_ms(p50)} = {ratio:.2f}x the 1x figure "
        f"{_ms(p50_1x)} (target <= {TARGET_GROWTH:g}x)  {_verdict(ratio <= TARGET_GROWTH)}"
    )


# --------------------------------------------------------------------------- 3. batch


def part_batch(setup: Setup, batch_n: int, predict_n: int, repeat: int) -> None:
    """score_batch on batch_n captions vs predict in a loop on predict_n, per post."""
    print()
    print(
        f"3. Batch vs predict: score_batch on {batch_n} captions vs predict() in a loop on "
        f"{predict_n} (no LLM keys)"
    )
    drafts = _take(setup.drafts, 0, batch_n)
    subset = drafts[:predict_n]

    best_batch: tuple[float, pd.DataFrame] | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        scored = score_batch(drafts, db_path=STORE, as_of=setup.as_of)
        seconds = time.perf_counter() - started
        if best_batch is None or seconds < best_batch[0]:
            best_batch = (seconds, scored)
    assert best_batch is not None
    batch_seconds, scored = best_batch
    _check(len(scored) == batch_n, f"score_batch returned {len(scored)} rows")
    errors = int(scored["error"].notna().sum())

    # The public path: predict() reads settings from the environment, like a notebook user.
    os.environ["VIRTUNA_DB_PATH"] = str(STORE)
    for variable in ("GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        os.environ.pop(variable, None)
    get_settings.cache_clear()
    settings = get_settings()
    if settings.gemini_api_key is not None or settings.deepseek_api_key is not None:
        print("   SKIPPED: an LLM key is configured (.env?); predict() would call real APIs")
        return
    times: list[float] = []
    results: list[PredictionResult] = []
    for draft in subset:
        started = time.perf_counter()
        results.append(
            predict(
                draft["content_text"],
                creator_handle=draft["creator_handle"],
                planned_post_time=setup.as_of,  # the public API's way to say "as of"
            )
        )
        times.append(time.perf_counter() - started)
    get_settings.cache_clear()

    per_batch = batch_seconds / batch_n
    per_predict = sum(times) / predict_n
    ratio = per_predict / per_batch
    same = sum(
        abs(r.overall_score - float(s)) < 1e-9
        for r, s in zip(results, scored["overall_score"][:predict_n], strict=True)
    )
    print(
        f"   score_batch: {batch_seconds:.3f} s for {batch_n} (best of {repeat}) = "
        f"{_ms(per_batch)} per post; {errors} validation errors"
    )
    print(
        f"   predict loop: {sum(times):.3f} s for {predict_n} = {_ms(per_predict)} per post "
        f"(median {_ms(statistics.median(times))})"
    )
    print(
        f"   batch per post: {ratio:.1f}x faster (target >= {TARGET_BATCH:g}x)  "
        f"{_verdict(ratio >= TARGET_BATCH)}"
    )
    print(f"   same overall_score from both on {same}/{predict_n} shared captions")


# --------------------------------------------------------------------------- 4. matching

# The same word splits as virtuna.engine.fuzzy: content on whitespace and punctuation, a sound
# name on whitespace, '-' and '_'.
_CONTENT_SPLIT = re.compile(r"[\s\-_.,;:!?()\[\]{}|/\\]+")
_TARGET_SPLIT = re.compile(r"[\s\-_]+")


def jaro_winkler(a: str, b: str) -> float:
    """Textbook Jaro-Winkler: prefix scale 0.1 over at most 4 characters, boost above 0.7."""
    if a == b:
        return 1.0
    len_a, len_b = len(a), len(b)
    if not len_a or not len_b:
        return 0.0
    window = max(0, max(len_a, len_b) // 2 - 1)
    matched_a = [False] * len_a
    matched_b = [False] * len_b
    matches = 0
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(len_b, i + window + 1)):
            if not matched_b[j] and b[j] == char:
                matched_a[i] = matched_b[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    half_transpositions = 0
    j = 0
    for i in range(len_a):
        if matched_a[i]:
            while not matched_b[j]:
                j += 1
            if a[i] != b[j]:
                half_transpositions += 1
            j += 1
    transpositions = half_transpositions // 2
    jaro = (matches / len_a + matches / len_b + (matches - transpositions) / matches) / 3
    if jaro <= 0.7:
        return jaro
    prefix = 0
    for char_a, char_b in zip(a[:4], b[:4], strict=False):
        if char_a != char_b:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def match_sounds_python(
    content: str, sounds: Iterable[tuple[str, str]], threshold: float = THRESHOLD
) -> list[tuple[str, str, float]]:
    """match_sounds in pure Python: substring 1.0, else the best word n-gram (1..words+1)."""
    text = content.lower()
    words = [w for w in _CONTENT_SPLIT.split(text) if w]
    ngrams: dict[int, list[str]] = {}
    found = []
    for key, raw_name in sounds:
        name = raw_name.strip().lower()
        if not name or not words:
            continue
        if name in text:
            score = 1.0
        else:
            best = 0.0
            for size in range(1, len([w for w in _TARGET_SPLIT.split(name) if w]) + 2):
                if size not in ngrams:
                    ngrams[size] = [
                        " ".join(words[i : i + size]) for i in range(len(words) - size + 1)
                    ]
                if not ngrams[size]:
                    break
                for candidate in ngrams[size]:
                    best = max(best, jaro_winkler(name, candidate))
            score = round(best, 3)
        if score >= threshold:
            found.append((key, raw_name, score))
    found.sort(key=lambda item: -item[2])
    return found


def _timed_matcher(
    matcher: Callable[[str, list[tuple[str, str]]], list[tuple[str, str, float]]],
    captions: list[str],
    sounds: list[tuple[str, str]],
) -> tuple[float, list[list[tuple[str, str, float]]]]:
    started = time.perf_counter()
    found = [matcher(caption, sounds) for caption in captions]
    return time.perf_counter() - started, found


def part_matching(setup: Setup, count: int, repeat: int) -> None:
    """rapidfuzz match_sounds vs the pure-Python matcher on the same captions and sounds."""
    print()
    print(
        f"4. Sound matching: match_sounds (rapidfuzz {rapidfuzz.__version__}) vs pure-Python "
        f"Jaro-Winkler, {count} captions x top {len(setup.sounds)} trending sounds"
    )
    captions = [d["content_text"] for d in _take(setup.drafts, 0, count)]
    fast = min(
        (_timed_matcher(match_sounds, captions, setup.sounds) for _ in range(repeat)),
        key=lambda timed: timed[0],
    )
    slow = _timed_matcher(match_sounds_python, captions, setup.sounds)
    same_sets = sum(
        {k for k, _, _ in a} == {k for k, _, _ in b} for a, b in zip(fast[1], slow[1], strict=True)
    )
    same_scores = sum(
        sorted((k, s) for k, _, s in a) == sorted((k, s) for k, _, s in b)
        for a, b in zip(fast[1], slow[1], strict=True)
    )
    with_match = sum(bool(found) for found in fast[1])
    agreement = same_sets / count
    print(
        f"   rapidfuzz: {fast[0]:.3f} s (best of {repeat}) = {fast[0] / count * 1e6:,.0f} us per "
        f"caption; pure Python: {slow[0]:.3f} s = {slow[0] / count * 1e6:,.0f} us per caption"
    )
    print(f"   rapidfuzz is {slow[0] / fast[0]:.1f}x faster")
    print(
        f"   same sounds found on {same_sets}/{count} captions = {agreement:.1%} "
        f"(target >= {TARGET_AGREEMENT:.0%})  {_verdict(agreement >= TARGET_AGREEMENT)}; "
        f"same sounds and scores on {same_scores}/{count}; {with_match} captions match a sound"
    )
    shown = 0
    for caption, a, b in zip(captions, fast[1], slow[1], strict=True):
        if {k for k, _, _ in a} != {k for k, _, _ in b} and shown < 3:
            print(f"   differs: {caption[:60]!r}: rapidfuzz {a[:3]} vs python {b[:3]}")
            shown += 1


# --------------------------------------------------------------------------- main


def _run_part(name: str, part: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = part()
    print(f"   ({name} took {time.perf_counter() - started:.1f} s)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Build the store, run the four measurements, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200, help="analyses in part 1")
    parser.add_argument("--concurrent", type=int, default=100, help="analyses at once, part 2")
    parser.add_argument("--batch", type=int, default=500, help="captions for score_batch")
    parser.add_argument("--predict", type=int, default=50, help="captions for the predict loop")
    parser.add_argument("--match", type=int, default=300, help="captions for sound matching")
    parser.add_argument("--repeat", type=int, default=3, help="runs of cheap measurements")
    args = parser.parse_args(argv)
    if min(args.sequential, args.concurrent, args.batch, args.predict, args.match) < 2:
        parser.error("every count must be at least 2")
    if args.repeat < 1 or args.predict > args.batch:
        parser.error("--repeat must be positive and --predict at most --batch")

    configure_logging(load_settings(virtuna_log_level="WARNING"))
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, 1-minute load average "
        f"{load:.2f} at start (other processes skew the timings); fake LLMs in a child process"
    )
    setup = build_store()
    fakes = RemoteFakes()
    p50: list[float] = []
    try:
        _run_part("part 1", lambda: p50.append(part_overhead(setup, fakes, args.sequential)))
        _run_part("part 2", lambda: part_concurrency(setup, fakes, args.concurrent, args.repeat))
        _run_part("part 3", lambda: part_batch(setup, args.batch, args.predict, args.repeat))
        _run_part("part 4", lambda: part_matching(setup, args.match, args.repeat))
        if p50:
            _run_part("part 5", lambda: part_growth(setup, fakes, args.sequential, p50[0]))
    finally:
        fakes.close()
    _remove_store()

    peak_mib = peak_rss_mib()
    print()
    print(
        f"total {time.perf_counter() - started:.0f} s; peak RSS: {peak_mib:,.0f} MiB "
        f"(this process); cores: {os.cpu_count()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
