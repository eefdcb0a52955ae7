"""Flat CSV sources: one CsvFormat per layout, mapped by the shared field-map mechanism.

`timeline_csv` (the 2021 user timelines), `trending_csv` (the 2025 trending table),
`vn_web_csv` (the 2025 Vietnamese feed and creator timelines scraped from the web UI) and
`suggested_csv` (the 2020 TikTokApi crawl of suggested creators). Every file is read with the
standard csv module as UTF-8 with an optional byte-order mark (a row with the wrong number of
fields is rejected with that reason) into a relation of strings.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from virtuna.hashtags import normalize_hashtags
from virtuna.ingest.batch import HashtagParser, MappedBatch, finish_batch, mapping_connection
from virtuna.ingest.mapping import FieldMap, compile_select
from virtuna.store.videos import Reject


def parse_python_list_hashtags(value: str | None) -> list[str] | None:
    """The timeline export's Python-literal list, e.g. "[{'name': 'fyp'}]"."""
    if value is None:
        return None
    items = ast.literal_eval(value)
    if not isinstance(items, list):
        raise ValueError("hashtags is not a list literal")
    return normalize_hashtags(h.get("name") if isinstance(h, dict) else h for h in items)


def parse_comma_hashtags(value: str | None) -> list[str] | None:
    """A comma-separated list of names, e.g. "fyp, dogs, dogtok"."""
    if value is None:
        return None
    return normalize_hashtags(value.split(","))


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


@dataclass(frozen=True)
class CsvFormat:
    """A CSV layout: the columns that identify it and how its columns map to scraped_videos."""

    name: str
    signature: frozenset[str]
    fields: tuple[FieldMap, ...]
    hashtags_column: str
    parse_hashtags: HashtagParser
    scraped_at_column: str | None = None
    # When the whole source was scraped at one known time (the source has no column for it).
    scraped_at: datetime | None = None
    # A key repeated within the source is a later scrape of the same video, not an error: every
    # repeat is stored as an update, and the latest scrape wins (see `store_batch`).
    keep_repeats: bool = False

    def select_sql(self) -> str:
        """The compiled mapping over the registered `_rows` relation."""
        extra = (
            f", {_q(self.scraped_at_column)} AS scraped_at_raw" if self.scraped_at_column else ""
        )
        source = f"SELECT *, {_q(self.hashtags_column)} AS hashtags_raw{extra} FROM _rows"
        fields = list(self.fields)
        if self.scraped_at_column:
            fields.append(FieldMap("scraped_at", "scraped_at_raw", "datetime"))
        return compile_select(source, fields, passthrough=["hashtags_raw"])


# 2021 timelines: ids were saved in 6-significant-digit float notation, so they cannot be keys.
# The stable key is "tl:<authorMeta.id as written>:<createTime in whole seconds>", unique in the
# file (an author posts at most once per second); sound ids are lossy too and are not kept.
TIMELINE_CSV = CsvFormat(
    name="timeline_csv",
    signature=frozenset({"authorMeta.id", "createTime", "playCount", "hashtags"}),
    fields=(
        FieldMap(
            "platform_video_id",
            "'tl:' || nullif(trim(\"authorMeta.id\"), '') || ':' "
            '|| CAST(TRY_CAST("createTime" AS DOUBLE) AS BIGINT)',
            required=True,
        ),
        FieldMap("posted_at", _q("createTime"), "epoch", required=True),
        FieldMap("author_id", _q("authorMeta.id")),
        FieldMap("author_followers", _q("authorMeta.fans"), "count"),
        FieldMap("author_hearts", _q("authorMeta.heart"), "count"),
        FieldMap("author_videos", _q("authorMeta.video"), "count"),
        FieldMap("author_verified", _q("authorMeta.verified"), "bool"),
        FieldMap("description", _q("text")),
        FieldMap("sound_original", _q("musicMeta.musicOriginal"), "bool"),
        FieldMap("duration_seconds", _q("videoMeta.duration"), "number"),
        FieldMap("views", _q("playCount"), "count"),
        FieldMap("likes", _q("diggCount"), "count"),
        FieldMap("shares", _q("shareCount"), "count"),
        FieldMap("comments", _q("commentCount"), "count"),
    ),
    hashtags_column="hashtags",
    parse_hashtags=parse_python_list_hashtags,
)

# Labels TikTok gives a creator's own audio in various languages, alone or as "<label> - <name>";
# any other title names a shared track. (Read off the 2025 file's most frequent titles.)
ORIGINAL_SOUND_LABELS = (
    "original sound",
    "sonido original",
    "som original",
    "son original",
    "suono originale",
    "originalton",
    "origineel geluid",
    "оригинальный звук",
    "оригінальний звук",
    "suara asli",
    "nhạc nền",
    "orijinal ses",
    "dźwięk oryginalny",
    "الصوت الأصلي",
    "เสียงต้นฉบับ",
    "原聲",
    "原声",
    "オリジナル楽曲",
    "오리지널 사운드",
)
_LABELS_SQL = "(" + ", ".join("'" + label + "'" for label in ORIGINAL_SOUND_LABELS) + ")"


def _original_sound_sql(column: str) -> str:
    """'true' when a sound title is a creator's own audio label, 'false' for a named track."""
    title = f"lower(trim({_q(column)}))"
    return (
        f"CASE WHEN regexp_replace({title}, ' - .*$', '') IN {_LABELS_SQL} THEN 'true' "
        f"WHEN nullif({title}, '') IS NOT NULL THEN 'false' END"
    )


# 2025 trending: a merge of two scrapes; 7 rows carry views/posted_time/fetch_time instead of
# plays/create_time. No follower counts, no durations.
TRENDING_CSV = CsvFormat(
    name="trending_csv",
    signature=frozenset({"video_id", "author", "plays", "create_time", "music"}),
    fields=(
        FieldMap("platform_video_id", _q("video_id"), required=True),
        FieldMap("video_url", _q("video_url")),
        FieldMap(
            "posted_at",
            "coalesce(nullif(trim(create_time), ''), nullif(trim(posted_time), ''))",
            "datetime",
            required=True,
        ),
        FieldMap("author_handle", _q("author")),
        FieldMap("description", _q("description")),
        FieldMap("sound_name", _q("music")),
        FieldMap("sound_original", _original_sound_sql("music"), "bool"),
        FieldMap("views", "coalesce(nullif(trim(plays), ''), nullif(trim(views), ''))", "count"),
        FieldMap("likes", _q("likes"), "count"),
        FieldMap("shares", _q("shares"), "count"),
        FieldMap("comments", _q("comments"), "count"),
    ),
    hashtags_column="hashtags",
    parse_hashtags=parse_comma_hashtags,
    scraped_at_column="fetch_time",
)

# 2025 Vietnamese web-UI scrape (feed and creator timelines): counts as the UI shows them
# ("213.1K"; "Share" is the button label TikTok shows at 0 shares), durations from the player
# ("00:00" when it had not loaded, empty for photo posts), the scrape time in the scraping PC's
# local time (UTC+7). `music_id` went through a float and lost its last digits, so it is not
# kept: sounds are known by title and author. The second timeline file re-scraped some videos.
VN_WEB_CSV = CsvFormat(
    name="vn_web_csv",
    signature=frozenset({"vid_id", "vid_scrapeTime", "vid_nview", "user_nfollower", "music_title"}),
    fields=(
        FieldMap("platform_video_id", _q("vid_id"), required=True),
        FieldMap("video_url", _q("vid_url")),
        FieldMap("posted_at", _q("vid_postTime"), "datetime", required=True),  # UTC (from id)
        FieldMap("scraped_at", _q("vid_scrapeTime"), "datetime", utc_offset_hours=7),
        FieldMap("author_handle", _q("user_name")),
        FieldMap("author_followers", _q("user_nfollower"), "short_count"),
        FieldMap("description", _q("vid_caption")),
        FieldMap("duration_seconds", "nullif(trim(vid_duration), '00:00')", "clock"),
        FieldMap("views", _q("vid_nview"), "short_count"),
        FieldMap("likes", _q("vid_nlike"), "short_count"),
        FieldMap("comments", _q("vid_ncomment"), "short_count"),
        FieldMap(
            "shares",
            "CASE WHEN trim(vid_nshare) = 'Share' THEN '0' ELSE vid_nshare END",
            "short_count",
        ),
        FieldMap("saves", _q("vid_nsave"), "short_count"),
        FieldMap("sound_name", _q("music_title")),
        FieldMap("sound_author", _q("music_authorName")),
        FieldMap("sound_original", _q("music_originality"), "bool"),
    ),
    hashtags_column="vid_hashtags",
    parse_hashtags=parse_comma_hashtags,
    keep_repeats=True,
)

# 2020 TikTokApi crawl of suggested creators: no caption, no sound id, no scrape-time column.
# The files were committed 2020-11-08 02:43 UTC, minutes after the newest post in them
# (01:54 UTC), so that commit time bounds the scrape from above; it gives every view count an
# age (at most about a day too old for the creators crawled first).
SUGGESTED_CSV = CsvFormat(
    name="suggested_csv",
    signature=frozenset({"id", "create_time", "user_name", "song", "n_plays", "n_followers"}),
    fields=(
        FieldMap("platform_video_id", _q("id"), required=True),
        FieldMap("posted_at", _q("create_time"), "epoch", required=True),
        FieldMap("author_handle", _q("user_name")),
        FieldMap("author_followers", _q("n_followers"), "count"),
        FieldMap("author_hearts", _q("n_total_likes"), "count"),
        FieldMap("author_videos", _q("n_total_vids"), "count"),
        FieldMap("sound_name", _q("song")),
        FieldMap("sound_original", _original_sound_sql("song"), "bool"),
        FieldMap("duration_seconds", _q("video_length"), "number"),
        FieldMap("views", _q("n_plays"), "count"),
        FieldMap("likes", _q("n_likes"), "count"),
        FieldMap("shares", _q("n_shares"), "count"),
        FieldMap("comments", _q("n_comments"), "count"),
    ),
    hashtags_column="hashtags",
    parse_hashtags=parse_python_list_hashtags,
    scraped_at=datetime(2020, 11, 8, 2, 43),
)

CSV_FORMATS = (TIMELINE_CSV, TRENDING_CSV, VN_WEB_CSV, SUGGESTED_CSV)


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV file."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def read_csv_rows(
    path: Path, chunk_rows: int = 50_000
) -> Iterator[tuple[list[str], list[list[str]], list[int], list[Reject], int]]:
    """Chunks of (header, rows, positions, malformed-row rejects, bytes consumed)."""
    size = path.stat().st_size
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[list[str]] = []
        positions: list[int] = []
        rejects: list[Reject] = []
        for position, row in enumerate(reader):
            if len(row) != len(header):
                rejects.append(
                    Reject(
                        position,
                        f"expected {len(header)} fields, found {len(row)}",
                        json.dumps(row, ensure_ascii=False),
                    )
                )
                continue
            rows.append(row)
            positions.append(position)
            if len(rows) >= chunk_rows:
                yield header, rows, positions, rejects, 0
                rows, positions, rejects = [], [], []
        yield header, rows, positions, rejects, size


def map_csv_rows(
    fmt: CsvFormat,
    header: list[str],
    rows: list[list[str]],
    positions: list[int],
    *,
    source_ref: str,
    seen_keys: dict[str, int],
    con: duckdb.DuckDBPyConnection | None = None,
) -> MappedBatch:
    """Map CSV data rows (all strings) to scraped_videos rows and rejects (on `con` if given)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    data = {
        name: pa.array(values, type=pa.string())
        for name, values in zip(header, columns, strict=True)
    }
    data["position"] = pa.array(positions, type=pa.int64())
    data["raw"] = pa.array(
        [json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) for row in rows],
        type=pa.string(),
    )
    with mapping_connection(con) as mapper:
        mapper.register("_rows", pa.table(data))
        try:
            return finish_batch(
                mapper,
                fmt.select_sql(),
                source=fmt.name,
                source_ref=source_ref,
                parse_hashtags=fmt.parse_hashtags,
                seen_keys=seen_keys,
                scraped_at=fmt.scraped_at,
                keep_repeats=fmt.keep_repeats,
            )
        finally:
            mapper.unregister("_rows")
