"""Benchmark: how fast the project's ingest stores Apify items, against two yardsticks.

Run: `.venv/bin/python bench/ingest.py [--items 100000] [--baseline-rows 3000] [--repeat 3]`

All three methods read the same work file (real Apify clockworks items, JSON Lines) and write
to a fresh file-backed DuckDB database on the same disk, so their rows/s are comparable:

- project: `virtuna.ingest.ingest_file` -- chunked read, one vectorised DuckDB SELECT per
  chunk that casts and validates every field, hashtags and duplicate checks in Python, then a
  bulk upsert into `scraped_videos` (raw item kept as JSON). This is what is being measured.
- project webhook path: `virtuna.ingest.apify_runs.ingest_run`, what the Apify webhook runs:
  the run's dataset paged out of the Apify API (the project's fake on 127.0.0.1, serving the
  same items in Apify's wire format) and each page stored as above. For reference: it adds
  serving and parsing the API's JSON pages.
- duckdb read_json_auto: `CREATE TABLE t AS SELECT * FROM read_json_auto(...)`. DuckDB's own
  JSON reader with no mapping, no validation and no upsert: the floor, roughly the best any
  ingest built on DuckDB could do. The target is that the project is at most 3x
  slower than this.
- row-at-a-time: the naive way -- `json.loads` each line, pull the same fields in Python and
  run one parameterised INSERT per row into a freshly migrated store. The target is
  that the project is at least 50x faster. The baseline is given every benefit of the doubt:
  no validation or reject bookkeeping, and the store created and migrated before the clock
  starts. It runs twice on the first `--baseline-rows` items only, since it is slow: each row
  committed on its own (the target's yardstick: a per-row upsert loop) and, for reference,
  all rows in one transaction (what is left is DuckDB's per-statement overhead).

Each measurement is the best of `--repeat` runs (wall clock, `time.perf_counter`), each into a
new database file that is deleted afterwards. The script always exits 0: it is a measurement,
not a test; a missed target is printed as MISS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from machine import print_footer

from virtuna.config import load_settings
from virtuna.hashtags import extract_hashtags, normalize_hashtags
from virtuna.ingest import ingest_file
from virtuna.log import configure_logging
from virtuna.store import connect, transaction, utcnow
from virtuna.store.videos import VIDEO_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes (the Apify fake) is imported from the repository root
    sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "raw" / "tiktok_apify_2023_sample.jsonl"
WORK = ROOT / "bench" / ".work"

TARGET_VS_DUCKDB = 3.0  # project at most this many times slower than read_json_auto
TARGET_VS_ROWWISE = 50.0  # project at least this many times faster than row-at-a-time

BASELINE_COLUMNS = (*VIDEO_COLUMNS, "ingested_at", "updated_at")


@dataclass
class Result:
    """One method's best run."""

    method: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Throughput of the best run."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------- work file


def build_work_file(items: int) -> Path:
    """Write `items` Apify items to bench/.work by repeating the real sample items.

    The data is the 192 real items, repeated verbatim in order until `items` lines are
    written; nothing is synthesised. Only the top-level `id` is rewritten (original id plus a
    fixed-width copy number, still a string of digits): the ingest keys videos on that id and
    rejects a repeated id as a duplicate, so without distinct ids the copies would measure the
    reject path instead of storing `items` distinct videos.
    """
    originals = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    copies = -(-items // len(originals))
    width = len(str(copies - 1))
    prefixes: list[tuple[str, str]] = []
    for line in originals:
        item_id = json.loads(line)["id"]
        prefix = f'{{"id":"{item_id}"'
        # Every sample line starts with its id, so the id is swapped as text and every other
        # byte of the item stays as scraped.
        if not (isinstance(item_id, str) and item_id.isdigit() and line.startswith(prefix)):
            raise SystemExit(
                f"{SAMPLE}: an item does not start with a digit-string id: {line[:60]}"
            )
        prefixes.append((item_id, line[len(prefix) :]))

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"apify_items_{items}.jsonl"
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for copy in range(copies):
            for item_id, rest in prefixes:
                if written == items:
                    break
                out.write(f'{{"id":"{item_id}{copy:0{width}d}"{rest}\n')
                written += 1

    # Spot check: a rewritten item equals its original apart from the id.
    with path.open("r", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    original = json.loads(originals[0])
    if first != {**original, "id": f"{original['id']}{0:0{width}d}"}:
        raise SystemExit("work file check failed: a copied item differs from its original")
    return path


# --------------------------------------------------------------------------- methods


def _check(ok: bool, message: str) -> None:
    """Stop the benchmark when a method did not do the work it is timed for."""
    if not ok:
        raise SystemExit(f"benchmark check failed: {message}")


def _fresh_db(name: str) -> Path:
    path = WORK / f"{name}.duckdb"
    _remove_db(path)
    return path


def _remove_db(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def best_of(repeat: int, run_once: Callable[[Path], tuple[int, float]], name: str) -> Result:
    """Run a method `repeat` times, each into a fresh database file; keep the fastest."""
    best: Result | None = None
    slug = re.sub(r"\W+", "_", name).strip("_")
    for attempt in range(repeat):
        db = _fresh_db(f"{slug}_{attempt}")
        try:
            rows, seconds = run_once(db)
        finally:
            _remove_db(db)
        print(f"  {name:<24} run {attempt + 1}/{repeat}: {rows:>8,} rows in {seconds:8.3f} s")
        if best is None or seconds < best.seconds:
            best = Result(name, rows, seconds)
    if best is None:
        raise SystemExit("no runs")
    return best


def run_project(work_file: Path, items: int) -> Callable[[Path], tuple[int, float]]:
    """The project's ingest_file on the whole work file."""

    def once(db: Path) -> tuple[int, float]:
        started = time.perf_counter()
        report = ingest_file(work_file, db_path=db)
        seconds = time.perf_counter() - started
        # The report must add up: every item read, stored as new, none rejected.
        _check(
            report.balanced
            and report.read == items
            and report.inserted == items
            and report.updated == 0
            and report.rejected == 0,
            f"ingest report does not add up to {items} new rows: {report}",
        )
        with connect(db) as con:
            (stored,) = con.execute("SELECT count(*) FROM scraped_videos").fetchall()[0]
        _check(stored == items, f"store holds {stored} videos, expected {items}")
        return items, seconds

    return once


def run_webhook(work_file: Path, items: int) -> Callable[[Path], tuple[int, float]]:
    """The webhook's path: `ingest_run` pages the run's dataset out of the Apify API (the
    project's fake on 127.0.0.1, serving the work file's items) and stores each page."""
    from tests.fakes.apify import FakeApify
    from virtuna.ingest.apify_runs import ingest_run

    with work_file.open(encoding="utf-8") as lines:
        dataset = [json.loads(line) for line in lines]

    def once(db: Path) -> tuple[int, float]:
        with FakeApify() as apify:
            run_id = apify.create_run()
            apify.finish_run(run_id, dataset)
            client = apify.client()
            started = time.perf_counter()
            result = ingest_run(client, run_id, db_path=db)
            seconds = time.perf_counter() - started
            client.close()
        _check(
            result.outcome == "ingested" and result.inserted == items,
            f"webhook ingest did not store {items} new rows: {result}",
        )
        return items, seconds

    return once


def run_duckdb_read(work_file: Path, items: int) -> Callable[[Path], tuple[int, float]]:
    """DuckDB's own JSON reader into a table, no mapping: the floor."""
    source = str(work_file).replace("'", "''")

    def once(db: Path) -> tuple[int, float]:
        started = time.perf_counter()
        con = duckdb.connect(str(db))
        try:
            con.execute(
                "CREATE TABLE t AS SELECT * FROM "
                f"read_json_auto('{source}', format='newline_delimited')"
            ).fetchall()
            (rows,) = con.execute("SELECT count(*) FROM t").fetchall()[0]
        finally:
            con.close()
        seconds = time.perf_counter() - started
        _check(rows == items, f"read_json_auto read {rows} rows, expected {items}")
        return int(rows), seconds

    return once


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def map_item_naively(line: str, source_ref: str, now: datetime) -> tuple[Any, ...]:
    """One item to a scraped_videos row in plain Python (same fields as the project maps)."""
    item = json.loads(line)
    author = item.get("authorMeta") or {}
    music = item.get("musicMeta") or {}
    video = item.get("videoMeta") or {}
    created = item.get("createTime")
    handle = _text(author.get("name"))
    caption = _text(item.get("text"))
    tags = item.get("hashtags")
    duration = video.get("duration")
    row = {
        "platform": "tiktok",
        "platform_video_id": _text(item.get("id")),
        "video_url": _text(item.get("webVideoUrl")),
        "posted_at": (
            None
            if created is None
            else datetime.fromtimestamp(float(created), UTC).replace(tzinfo=None)
        ),
        "author_handle": None if handle is None else handle.lstrip("@").lower(),
        "author_id": _text(author.get("id")),
        "author_followers": _count(author.get("fans")),
        "author_hearts": _count(author.get("heart")),
        "author_videos": _count(author.get("video")),
        "author_verified": author.get("verified"),
        "description": caption,
        "hashtags": (
            extract_hashtags(caption)
            if tags is None
            else normalize_hashtags(t.get("name") if isinstance(t, dict) else t for t in tags)
        ),
        "sound_id": _text(music.get("musicId")),
        "sound_name": _text(music.get("musicName")),
        "sound_author": _text(music.get("musicAuthor")),
        "sound_original": music.get("musicOriginal"),
        "duration_seconds": None if duration is None else float(duration),
        "views": _count(item.get("playCount")),
        "likes": _count(item.get("diggCount")),
        "shares": _count(item.get("shareCount")),
        "comments": _count(item.get("commentCount")),
        "saves": _count(item.get("collectCount")),
        "source": "apify",
        "source_ref": source_ref,
        "scraped_at": None,
        "ingested_at": now,
        "updated_at": now,
        "raw": line,
    }
    return tuple(row[c] for c in BASELINE_COLUMNS)


def run_row_at_a_time(
    work_file: Path, rows: int, *, one_transaction: bool
) -> Callable[[Path], tuple[int, float]]:
    """The naive baseline: json.loads and one INSERT per row, first `rows` items only.

    With `one_transaction` every INSERT runs in a single transaction; without it each row is
    its own statement and commit, which is how a per-row upsert loop usually runs.
    """
    insert = (
        f"INSERT INTO scraped_videos ({', '.join(BASELINE_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in BASELINE_COLUMNS)})"
    )

    def once(db: Path) -> tuple[int, float]:
        with connect(db):  # create and migrate the store before the clock starts
            pass
        started = time.perf_counter()
        done = 0
        with (
            connect(db) as con,
            transaction(con) if one_transaction else contextlib.nullcontext(),
            work_file.open("r", encoding="utf-8") as handle,
        ):
            now = utcnow()
            for line in handle:
                if done == rows:
                    break
                if not line.strip():
                    continue
                con.execute(insert, map_item_naively(line.rstrip("\n"), work_file.name, now))
                done += 1
        seconds = time.perf_counter() - started
        with connect(db) as con:
            (stored,) = con.execute("SELECT count(*) FROM scraped_videos").fetchall()[0]
        _check(stored == done, f"store holds {stored} videos, expected {done}")
        return done, seconds

    return once


# --------------------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS  <-- target missed"


def print_report(
    results: list[Result], project: Result, floor: Result, naive: Result, batched: Result
) -> None:
    """The table of methods, then the ratios against the targets."""
    print()
    print(f"{'method':<26}{'rows':>10}{'seconds':>11}{'rows/s':>13}")
    print("-" * 60)
    for r in results:
        print(f"{r.method:<26}{r.rows:>10,}{r.seconds:>11.3f}{r.rows_per_s:>13,.0f}")
    print()
    slower = floor.rows_per_s / project.rows_per_s
    faster = project.rows_per_s / naive.rows_per_s
    print(
        f"project vs DuckDB read_json_auto: {slower:.2f}x slower "
        f"(target <= {TARGET_VS_DUCKDB:g}x)  {_verdict(slower <= TARGET_VS_DUCKDB)}"
    )
    print(
        f"project vs row-at-a-time: {faster:.1f}x faster "
        f"(target >= {TARGET_VS_ROWWISE:g}x)  {_verdict(faster >= TARGET_VS_ROWWISE)}"
    )
    generous = project.rows_per_s / batched.rows_per_s
    print(
        f"project vs row-at-a-time in one transaction: {generous:.1f}x faster "
        "(for reference: the per-row statement overhead alone)"
    )


def main(argv: list[str] | None = None) -> int:
    """Build the work file, measure the three methods, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items in the work file")
    parser.add_argument(
        "--baseline-rows", type=int, default=3_000, help="items the row-at-a-time baseline inserts"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; best is kept")
    args = parser.parse_args(argv)
    if args.items < 1 or args.baseline_rows < 1 or args.repeat < 1:
        parser.error("--items, --baseline-rows and --repeat must be positive")

    configure_logging(load_settings(virtuna_log_level="WARNING"))

    started = time.perf_counter()
    work_file = build_work_file(args.items)
    size_mb = work_file.stat().st_size / 1e6
    print(
        f"work file: {work_file.relative_to(ROOT)} -- {args.items:,} items "
        f"({size_mb:,.1f} MB), the {SAMPLE.name} items repeated with distinct ids; "
        f"built in {time.perf_counter() - started:.2f} s"
    )
    print(
        f"python {platform.python_version()}, duckdb {duckdb.__version__}, "
        f"{os.cpu_count()} cores, best of {args.repeat} runs each"
    )
    print()

    baseline_rows = min(args.baseline_rows, args.items)
    project = best_of(args.repeat, run_project(work_file, args.items), "project ingest_file")
    floor = best_of(args.repeat, run_duckdb_read(work_file, args.items), "duckdb read_json_auto")
    naive = best_of(
        args.repeat,
        run_row_at_a_time(work_file, baseline_rows, one_transaction=False),
        "row-at-a-time",
    )
    batched = best_of(
        args.repeat,
        run_row_at_a_time(work_file, baseline_rows, one_transaction=True),
        "row-at-a-time (1 txn)",
    )
    webhook = best_of(args.repeat, run_webhook(work_file, args.items), "project webhook path")
    print_report([project, webhook, floor, naive, batched], project, floor, naive, batched)
    print(
        f"webhook path (Apify API fake, pages of 1,000): {webhook.rows_per_s:,.0f} rows/s, "
        f"{floor.rows_per_s / webhook.rows_per_s:.2f}x slower than read_json_auto (for "
        "reference: it includes serving and parsing the API's JSON pages)"
    )

    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
