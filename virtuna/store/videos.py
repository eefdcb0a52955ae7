"""scraped_videos and ingest_rejects: bulk upsert of mapped batches, rejects kept with reasons."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from virtuna.store.connection import mark_changed, one, run, utcnow
from virtuna.store.online import add_new_videos, merge_keys, refresh_online, touched_keys

KEY_COLUMNS = ("platform", "platform_video_id")
# Every column an ingest writes, in table order (ingested_at/updated_at are set on upsert).
VIDEO_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("platform_video_id", pa.string()),
        ("video_url", pa.string()),
        ("posted_at", pa.timestamp("us")),
        ("author_handle", pa.string()),
        ("author_id", pa.string()),
        ("author_followers", pa.int64()),
        ("author_hearts", pa.int64()),
        ("author_videos", pa.int64()),
        ("author_verified", pa.bool_()),
        ("description", pa.string()),
        ("hashtags", pa.list_(pa.string())),
        ("sound_id", pa.string()),
        ("sound_name", pa.string()),
        ("sound_author", pa.string()),
        ("sound_original", pa.bool_()),
        ("duration_seconds", pa.float64()),
        ("views", pa.int64()),
        ("likes", pa.int64()),
        ("shares", pa.int64()),
        ("comments", pa.int64()),
        ("saves", pa.int64()),
        ("source", pa.string()),
        ("source_ref", pa.string()),
        ("scraped_at", pa.timestamp("us")),
        ("raw", pa.string()),
    ]
)
VIDEO_COLUMNS = tuple(VIDEO_SCHEMA.names)


@dataclass(frozen=True)
class Reject:
    """A source row that could not be stored, with why."""

    position: int
    reason: str
    raw: str | None


@dataclass(frozen=True)
class UpsertCounts:
    """How many batch rows were new and how many replaced a stored video."""

    inserted: int
    updated: int


def upsert_videos(
    con: duckdb.DuckDBPyConnection, batch: pa.Table, *, fill_only: bool = False
) -> UpsertCounts:
    """Insert or update a batch of mapped videos, keyed on (platform, platform_video_id).

    Call it inside `transaction(con)`. The batch has VIDEO_SCHEMA and repeats no key. When a
    key is stored, the newer observation wins: a row with a known scrape time beats one with an
    unknown time, the later known time beats the earlier, and between two unknown times the
    later ingest wins. The winner's values replace the stored ones, the loser's only fill the
    columns the winner lacks (NULL), so a source that knows less never erases what another
    knew, and the latest scrape wins whatever the order of ingest. With `fill_only` the batch
    always loses. A batch row whose key is stored counts as updated, whether or not a value
    changed.
    """
    if batch.num_rows == 0:
        return UpsertCounts(0, 0)
    columns = ", ".join(VIDEO_COLUMNS)
    new, old = "excluded.scraped_at", "scraped_videos.scraped_at"
    wins = (
        "FALSE"
        if fill_only
        else f"(({new} IS NULL AND {old} IS NULL) OR {new} >= coalesce({old}, {new}))"
    )

    def merged(c: str) -> str:
        return (
            f"CASE WHEN {wins} THEN coalesce(excluded.{c}, scraped_videos.{c}) "
            f"ELSE coalesce(scraped_videos.{c}, excluded.{c}) END"
        )

    updates = ", ".join(f"{c} = {merged(c)}" for c in VIDEO_COLUMNS if c not in KEY_COLUMNS)
    # Rows identical to what is stored are left alone: rewriting them costs an index update.
    changed = " OR ".join(
        f"scraped_videos.{c} IS DISTINCT FROM {merged(c)}"
        for c in VIDEO_COLUMNS
        if c not in KEY_COLUMNS
    )
    now = utcnow()
    con.register("_video_batch", batch)
    try:
        # The online rows of every key the batch touches: the keys its videos had before and
        # have after (a merge can mix old and new values into a key neither row had).
        stored = (
            "(SELECT v.* FROM scraped_videos v JOIN _video_batch b "
            "ON v.platform = b.platform AND v.platform_video_id = b.platform_video_id)"
        )
        (existing,) = one(
            con,
            "SELECT count(*) FROM _video_batch b JOIN scraped_videos v "
            "ON v.platform = b.platform AND v.platform_video_id = b.platform_video_id",
        )
        insert = (
            f"INSERT INTO scraped_videos ({columns}, ingested_at, updated_at) "
            f"SELECT {columns}, $now, $now FROM _video_batch"
        )
        # ON CONFLICT costs a key probe per row even when nothing conflicts; skip it for a batch
        # of new videos (the count above ran in the same transaction, so it cannot go stale).
        if existing:
            insert += (
                f" ON CONFLICT (platform, platform_video_id) DO UPDATE SET {updates}, "
                f"updated_at = excluded.updated_at WHERE {changed}"
            )
            before = touched_keys(con, stored)
            run(con, insert, {"now": now})
            refresh_online(con, merge_keys(before, touched_keys(con, stored)))
        else:
            # New videos are stored as they are: their counts are added, nothing recounted.
            run(con, insert, {"now": now})
            add_new_videos(con, "_video_batch")
    finally:
        con.unregister("_video_batch")
    mark_changed(con)
    return UpsertCounts(inserted=batch.num_rows - int(existing), updated=int(existing))


def record_rejects(
    con: duckdb.DuckDBPyConnection, source: str, source_ref: str, rejects: list[Reject]
) -> int:
    """Keep rejected rows with their reasons; re-ingesting the same source replaces, not adds."""
    if not rejects:
        return 0
    table = pa.table(
        {
            "position": [r.position for r in rejects],
            "reason": [r.reason for r in rejects],
            "raw": [r.raw for r in rejects],
        }
    )
    con.register("_reject_batch", table)
    try:
        run(
            con,
            "INSERT INTO ingest_rejects "
            "SELECT $source, $ref, position, reason, raw, $now FROM _reject_batch "
            "ON CONFLICT (source_ref, position) DO UPDATE SET "
            "source = excluded.source, reason = excluded.reason, raw = excluded.raw, "
            "rejected_at = excluded.rejected_at",
            {"source": source, "ref": source_ref, "now": utcnow()},
        )
    finally:
        con.unregister("_reject_batch")
    return len(rejects)


def video_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """Per source: rows, first and last post time, distinct creators and sounds."""
    rows = run(
        con,
        "SELECT source, count(*) AS videos, min(posted_at) AS first_post, "
        "max(posted_at) AS last_post, "
        "count(DISTINCT coalesce(author_handle, author_id)) AS creators, "
        "count(DISTINCT coalesce(sound_id, lower(sound_name))) AS sounds "
        "FROM scraped_videos GROUP BY source ORDER BY source",
    )
    names = ("source", "videos", "first_post", "last_post", "creators", "sounds")
    return [dict(zip(names, row, strict=True)) for row in rows]
