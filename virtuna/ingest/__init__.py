"""Ingest scraped TikTok data from any supported file into the store.

Formats: `apify` (Apify clockworks items, JSON Lines or a JSON array), `drawrowfly` (the
drawrowfly scraper's `{"collector": [...]}` JSON), `timeline_csv` (the flattened 2021 user
timelines), `trending_csv` (the 2025 trending table). Every row read is inserted, updated or
rejected with a reason into `ingest_rejects`; the three always add up to the rows read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from virtuna.ingest.batch import MappedBatch
from virtuna.ingest.csv_tables import CSV_FORMATS, csv_header, map_csv_rows, read_csv_rows
from virtuna.ingest.tiktok_items import map_items, read_json_items, read_jsonl
from virtuna.log import get_logger, stage
from virtuna.store import connect, transaction
from virtuna.store.videos import record_rejects, upsert_videos

FORMATS = ("apify", "drawrowfly", "timeline_csv", "trending_csv")
Progress = Callable[[int], None]

log = get_logger(__name__)


class IngestError(ValueError):
    """A file that cannot be ingested at all (missing, unreadable, unknown format)."""


@dataclass
class IngestReport:
    """What one ingest of one file did."""

    path: str
    source: str
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
    raise IngestError(
        f"{path}: cannot tell its format; pass --format, one of: {', '.join(FORMATS)}"
    )


def store_batch(
    con: duckdb.DuckDBPyConnection, batch: MappedBatch, *, source: str, source_ref: str
) -> tuple[int, int, int]:
    """Upsert rows and keep rejects in one transaction; return (inserted, updated, rejected)."""
    with transaction(con):
        counts = upsert_videos(con, batch.rows)
        rejected = record_rejects(con, source, source_ref, batch.rejects)
    return counts.inserted, counts.updated, rejected


def _batches(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, progress: Progress | None
) -> Iterator[MappedBatch]:
    seen: dict[str, int] = {}
    ref = path.name
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
        csv_format = next(f for f in CSV_FORMATS if f.name == fmt)
        for header, rows, positions, malformed, consumed in read_csv_rows(path):
            missing = csv_format.signature - set(header)
            if missing:
                raise IngestError(f"{path}: not a {fmt} file; missing columns {sorted(missing)}")
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
) -> IngestReport:
    """Ingest one file into the store (upsert: a second ingest changes nothing)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    fmt = fmt or detect_format(path)
    report = IngestReport(path=str(path), source=fmt)
    started = time.perf_counter()
    with stage("ingest", source=fmt, file=path.name), connect(db_path) as con:
        for batch in _batches(con, path, fmt, progress):
            inserted, updated, rejected = store_batch(con, batch, source=fmt, source_ref=path.name)
            report.read += batch.read
            report.inserted += inserted
            report.updated += updated
            report.rejected += rejected
    report.seconds = round(time.perf_counter() - started, 3)
    if report.rejected:
        log.warning(
            "rows rejected", file=path.name, rejected=report.rejected, table="ingest_rejects"
        )
    log.info("ingested", **report.as_dict())
    return report


def collection_of(source_ref: str) -> str:
    """The data collection a row came from: a nested file's first folder, else the file's stem
    without a `_part<N>` or `_b` suffix (the parts of one crawl are one collection)."""
    parts = Path(source_ref).parts
    if len(parts) > 1:
        return parts[0]
    return re.sub(r"(_part\d+|_b)$", "", Path(source_ref).stem)
