"""Ingest scraped TikTok data from any supported file into the store.

Formats: `apify` (Apify clockworks items, JSON Lines or a JSON array), `drawrowfly` (the
drawrowfly scraper's `{"collector": [...]}` JSON), `apify_csv` (Apify CSV exports, flattened
columns), `timeline_csv` (the flattened 2021 user timelines), `trending_csv` (the 2025 trending
table), `vn_web_csv` (the 2025 Vietnamese web-UI scrapes), `suggested_csv` (the 2020 TikTokApi
crawl). Every row read is inserted, updated or rejected with a reason into `ingest_rejects`;
the three always add up to the rows read.

A row's `source` is the format; its `source_ref` is the file's path relative to the folder
ingested (`tiktok_apify_exports_vn_2025/hotelcantho210.csv`), or the file name when a file is
ingested alone. `collection_of` names the data collection a row belongs to.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from virtuna.constants import INGEST_FORMATS
from virtuna.ingest import apify_csv
from virtuna.ingest.batch import MappedBatch
from virtuna.ingest.csv_tables import CSV_FORMATS, csv_header, map_csv_rows, read_csv_rows
from virtuna.ingest.tiktok_items import map_items, read_json_items, read_jsonl
from virtuna.log import get_logger, stage
from virtuna.store import connect, transaction
from virtuna.store.videos import record_rejects, upsert_videos

DATA_SUFFIXES = (".json", ".jsonl", ".csv")
Progress = Callable[[int], None]

log = get_logger(__name__)


class IngestError(ValueError):
    """A file that cannot be ingested at all (missing, unreadable, unknown format)."""


@dataclass
class IngestReport:
    """What one ingest of one file did."""

    path: str
    source: str
    source_ref: str = ""
    read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        """Every row read was inserted, updated or rejected."""
        return self.read == self.inserted + self.updated + self.rejected

    def as_dict(self) -> dict[str, object]:
        """The report as plain values (for logs and tables)."""
        return asdict(self)


def detect_format(path: Path) -> str:
    """Tell a file's format from its name and first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "apify"
    if suffix == ".json":
        with path.open("r", encoding="utf-8") as handle:
            head = handle.read(4096).lstrip()
        if head.startswith("["):
            return "apify"
        if head.startswith("{"):
            return "drawrowfly" if '"collector"' in head or '"headers"' in head else "apify"
    if suffix == ".csv":
        header = set(csv_header(path))
        for fmt in CSV_FORMATS:
            if fmt.signature <= header:
                return fmt.name
        if apify_csv.SIGNATURE.issubset(header):
            return apify_csv.NAME
    raise IngestError(
        f"{path}: cannot tell its format; pass --format, one of: {', '.join(INGEST_FORMATS)}"
    )


def data_files(root: Path | str) -> list[tuple[Path, str]]:
    """Every data file below a folder, in path order, each with its source_ref (its path
    relative to the folder)."""
    root = Path(root)
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and path.suffix.lower() in DATA_SUFFIXES and not hidden:
            found.append((path, relative.as_posix()))
    return sorted(found, key=lambda pair: pair[1])


# One collection split over several files: "..._part3", and "..._b" for a second batch.
_SPLIT_SUFFIX = re.compile(r"_(part\d+|b)$")


def collection_of(source_ref: str) -> str:
    """The data collection a row came from: a nested ref's first folder, else the file stem
    without a trailing `_part<N>` or `_b`."""
    path = PurePosixPath(source_ref)
    if len(path.parts) > 1:
        return path.parts[0]
    return _SPLIT_SUFFIX.sub("", path.stem)


def _rounds(rows: pa.Table) -> Iterator[pa.Table]:
    """The rows in rounds that repeat no key, ordered by scrape time (earliest first)."""
    keys = rows["platform_video_id"]
    if pc.count_distinct(keys).as_py() == rows.num_rows:
        yield rows
        return
    # A stable sort, unknown times first: rows scraped at the same time keep their file order
    # (so the later one wins).
    times = rows["scraped_at"].to_pylist()
    order = sorted(range(rows.num_rows), key=lambda i: (times[i] is not None, times[i] or 0))
    rows = rows.take(pa.array(order, type=pa.int64()))
    seen: Counter[str] = Counter()
    occurrence = []
    for key in rows["platform_video_id"].to_pylist():
        occurrence.append(seen[key])
        seen[key] += 1
    numbers = pa.array(occurrence, type=pa.int64())
    for number in range(max(occurrence) + 1):
        yield rows.filter(pc.equal(numbers, number))


def store_batch(
    con: duckdb.DuckDBPyConnection, batch: MappedBatch, *, source: str, source_ref: str
) -> tuple[int, int, int]:
    """Upsert rows and keep rejects in one transaction; return (inserted, updated, rejected).

    A key repeated in the batch (a re-scrape) is stored in rounds, earliest scrape first, so
    each repeat counts as an update and the latest scrape is what stays.
    """
    inserted = updated = 0
    with transaction(con):
        for rows in _rounds(batch.rows):
            counts = upsert_videos(con, rows, fill_only=batch.fill_only)
            inserted += counts.inserted
            updated += counts.updated
        rejected = record_rejects(con, source, source_ref, batch.rejects)
    return inserted, updated, rejected


def _batches(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    ref: str,
    progress: Progress | None,
) -> Iterator[MappedBatch]:
    seen: dict[str, int] = {}
    if fmt == "apify" and path.suffix.lower() == ".jsonl":
        for block in read_jsonl(path):
            batch = map_items(
                block.lines,
                positions=block.positions,
                source="apify",
                source_ref=ref,
                seen_keys=seen,
                con=con,
            )
            batch.rejects.extend(block.rejects)
            yield batch
            if progress and block.consumed:
                progress(block.consumed)
    elif fmt in ("apify", "drawrowfly"):
        items = read_json_items(path)
        yield map_items(items, source=fmt, source_ref=ref, seen_keys=seen, con=con)
        if progress:
            progress(path.stat().st_size)
    else:
        csv_format = next((f for f in CSV_FORMATS if f.name == fmt), None)
        signature = csv_format.signature if csv_format else apify_csv.SIGNATURE
        for header, rows, positions, malformed, consumed in read_csv_rows(path):
            missing = signature - set(header)
            if missing:
                raise IngestError(f"{path}: not a {fmt} file; missing columns {sorted(missing)}")
            if csv_format is None:
                batch = apify_csv.map_apify_csv_rows(
                    header, rows, positions, source_ref=ref, seen_keys=seen, con=con
                )
            else:
                batch = map_csv_rows(
                    csv_format, header, rows, positions, source_ref=ref, seen_keys=seen, con=con
                )
            batch.rejects.extend(malformed)
            yield batch
            if progress and consumed:
                progress(consumed)


def ingest_file(
    path: Path | str,
    *,
    fmt: str | None = None,
    db_path: Path | str | None = None,
    progress: Progress | None = None,
    source_ref: str | None = None,
) -> IngestReport:
    """Ingest one file into the store (upsert: a second ingest changes nothing).

    `source_ref` names the file in the store (default: its name; see `data_files`).
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt is not None and fmt not in INGEST_FORMATS:
        raise IngestError(f"unknown format {fmt!r}; expected one of: {', '.join(INGEST_FORMATS)}")
    fmt = fmt or detect_format(path)
    ref = source_ref or path.name
    report = IngestReport(path=str(path), source=fmt, source_ref=ref)
    started = time.perf_counter()
    with stage("ingest", source=fmt, file=ref), connect(db_path) as con:
        for batch in _batches(con, path, fmt, ref, progress):
            inserted, updated, rejected = store_batch(con, batch, source=fmt, source_ref=ref)
            report.read += batch.read
            report.inserted += inserted
            report.updated += updated
            report.rejected += rejected
    report.seconds = round(time.perf_counter() - started, 3)
    if report.rejected:
        log.warning("rows rejected", file=ref, rejected=report.rejected, table="ingest_rejects")
    log.info("ingested", **report.as_dict())
    return report


_VOLUME_SQL = """
WITH new AS (
    SELECT CAST(ingested_at AS DATE) AS day, source, count(*) AS videos FROM scraped_videos
    WHERE ingested_at >= $since GROUP BY ALL),
rejected AS (
    SELECT CAST(rejected_at AS DATE) AS day, source, count(*) AS rejected FROM ingest_rejects
    WHERE rejected_at >= $since GROUP BY ALL)
SELECT day, source, coalesce(videos, 0) AS videos, coalesce(rejected, 0) AS rejected
FROM new FULL JOIN rejected USING (day, source)
ORDER BY day, source
"""


def ingest_volume(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> Any:
    """Per UTC day and source since `since` (all days when None): the videos the store saw for
    the first time and the rows it rejected, as a DataFrame (day, source, videos, rejected)."""
    return con.execute(_VOLUME_SQL, {"since": since or datetime.min}).df()
