"""TikTok item JSON: Apify clockworks items (JSON Lines or a JSON array) and drawrowfly JSON.

Both scrapers emit the same item layout (`id`, `text`, `createTime`, `authorMeta`, `musicMeta`,
`videoMeta`, `playCount` ...), so one mapping serves the bundled files and the live Apify
webhook. drawrowfly items lack follower counts; the mapping leaves those NULL.

Schema drift is handled field by field: a value that is absent is NULL, a value of the wrong
kind rejects the row with a reason. One bundled Apify item carries `authorMeta.height` where
`authorMeta.video` belongs; its video count is therefore unknown (NULL), and the item is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from virtuna.hashtags import normalize_hashtags
from virtuna.ingest.batch import MappedBatch, finish_batch, mapping_connection
from virtuna.ingest.mapping import FieldMap, compile_select
from virtuna.store.videos import Reject

# JSON paths read from each item, in one parse; the field maps below refer to them by index.
_PATHS = (
    "$.id",
    "$.webVideoUrl",
    "$.createTime",
    "$.authorMeta.name",
    "$.authorMeta.id",
    "$.authorMeta.fans",
    "$.authorMeta.heart",
    "$.authorMeta.video",
    "$.authorMeta.verified",
    "$.text",
    "$.musicMeta.musicId",
    "$.musicMeta.musicName",
    "$.musicMeta.musicAuthor",
    "$.musicMeta.musicOriginal",
    "$.videoMeta.duration",
    "$.playCount",
    "$.diggCount",
    "$.shareCount",
    "$.commentCount",
    "$.collectCount",
    "$.hashtags",
)
_COLUMNS = (
    ("platform_video_id", "text", True),
    ("video_url", "text", False),
    ("posted_at", "epoch", False),
    ("author_handle", "text", False),
    ("author_id", "text", False),
    ("author_followers", "count", False),
    ("author_hearts", "count", False),
    ("author_videos", "count", False),
    ("author_verified", "bool", False),
    ("description", "text", False),
    ("sound_id", "text", False),
    ("sound_name", "text", False),
    ("sound_author", "text", False),
    ("sound_original", "bool", False),
    ("duration_seconds", "number", False),
    ("views", "count", False),
    ("likes", "count", False),
    ("shares", "count", False),
    ("comments", "count", False),
    ("saves", "count", False),
)
# Fallbacks for items that lack a field but carry it elsewhere (Apify's reduced CSV exports
# have no id, createTime or, in one file, authorMeta.name): the id from webVideoUrl, the post
# time from a 19-digit id's top 32 bits (TikTok ids start with the Unix second of the post),
# the handle from the URL. Items that have the field are read as before.
_ID = "coalesce(nullif(trim(v[1]), ''), regexp_extract(v[2], '/(?:video|photo)/([0-9]+)', 1))"
_ID_SECONDS = (
    f"CASE WHEN regexp_full_match({_ID}, '[0-9]{{19}}') "
    f"THEN CAST(TRY_CAST({_ID} AS HUGEINT) >> 32 AS VARCHAR) END"
)
_FALLBACKS = {
    "platform_video_id": _ID,
    "posted_at": f"coalesce(nullif(trim(v[3]), ''), {_ID_SECONDS})",
    "author_handle": (
        "coalesce(nullif(trim(v[4]), ''), regexp_extract(v[2], 'tiktok\\.com/@([^/?#]+)', 1))"
    ),
}
ITEM_FIELDS = [
    FieldMap(column, _FALLBACKS.get(column, f"v[{i + 1}]"), kind, required)  # type: ignore[arg-type]
    for i, (column, kind, required) in enumerate(_COLUMNS)
]
_PATH_LIST = "[" + ", ".join(f"'{p}'" for p in _PATHS) + "]"
# One parse per item: TRY turns a malformed document into NULL instead of an error.
_SOURCE_SQL = (
    "SELECT position, raw, v[{tags}] AS hashtags_raw, v FROM ("
    f" SELECT position, raw, TRY(json_extract_string(raw, {_PATH_LIST})) AS v FROM _items)"
).format(tags=len(_PATHS))
# json_type parses again, but only for the few rows without an id.
_STRUCTURE = [
    "CASE WHEN v IS NULL THEN 'malformed JSON' "
    "WHEN v[1] IS NULL AND json_type(raw) <> 'OBJECT' THEN 'not a JSON object' END"
]
ITEMS_SELECT = compile_select(
    _SOURCE_SQL, ITEM_FIELDS, structural_checks=_STRUCTURE, passthrough=["hashtags_raw"]
)


def parse_item_hashtags(value: str | None) -> list[str] | None:
    """`hashtags` of an item ([{name: ...}, ...]); None when the item has no tag list."""
    if value is None:
        return None
    items = json.loads(value)
    if not isinstance(items, list):
        raise ValueError("hashtags is not a list")
    return normalize_hashtags(h.get("name") if isinstance(h, dict) else h for h in items)


def map_items(
    raw_items: Sequence[str] | pa.Array,
    *,
    source: str,
    source_ref: str,
    start_position: int = 0,
    positions: Sequence[int] | pa.Array | None = None,
    seen_keys: dict[str, int] | None = None,
    scraped_at: datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    keep_repeats: bool = False,
) -> MappedBatch:
    """Map raw item JSON texts (a list, or an Arrow string array) to rows and rejects.

    The mapping runs on `con` when given (any connection will do: it only reads the items),
    else on a private in-memory DuckDB.
    """
    if positions is None:
        positions = range(start_position, start_position + len(raw_items))
    items = pa.table(
        {
            "position": pa.array(positions, type=pa.int64()),
            "raw": pa.array(raw_items, type=pa.string()),
        }
    )
    with mapping_connection(con) as mapper:
        mapper.register("_items", items)
        try:
            return finish_batch(
                mapper,
                ITEMS_SELECT,
                source=source,
                source_ref=source_ref,
                parse_hashtags=parse_item_hashtags,
                seen_keys={} if seen_keys is None else seen_keys,
                scraped_at=scraped_at,
                keep_repeats=keep_repeats,
            )
        finally:
            mapper.unregister("_items")


@dataclass(frozen=True)
class LineBlock:
    """A block of a JSON Lines file: its non-blank lines with their 0-based line numbers."""

    positions: pa.Array
    lines: pa.Array
    rejects: list[Reject]
    consumed: int


def _split_lines(chunk: bytes, first_line: int) -> tuple[pa.Array, pa.Array, list[Reject]]:
    # Arrow strings over the block's own bytes: offsets at each line start, no copy per line.
    data = np.frombuffer(chunk, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1)).astype(np.int64)
    offsets = np.append(starts, np.int64(len(data)))
    text = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(chunk))
    try:
        text.validate(full=True)  # UTF-8 checked in one pass
    except pa.ArrowInvalid:
        return _split_lines_one_by_one(chunk, first_line)
    positions = pa.array(np.arange(first_line, first_line + len(starts), dtype=np.int64))
    # Trailing blanks go (JSON ignores them); a line left empty is a blank line, not a row.
    text = pc.utf8_rtrim(text, characters=" \t\r\n")
    keep = pc.greater(pc.binary_length(text), 0)
    return positions.filter(keep), text.filter(keep).cast(pa.string()), []


def _split_lines_one_by_one(
    chunk: bytes, first_line: int
) -> tuple[pa.Array, pa.Array, list[Reject]]:
    positions: list[int] = []
    lines: list[str] = []
    rejects: list[Reject] = []
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                Reject(number, f"not valid UTF-8 ({exc.reason})", raw.decode("utf-8", "replace"))
            )
            continue
        if line.rstrip():
            positions.append(number)
            lines.append(line.rstrip())
    return pa.array(positions, type=pa.int64()), pa.array(lines, type=pa.string()), rejects


def read_jsonl(path: Path, block_bytes: int = 32 * 2**20) -> Iterator[LineBlock]:
    """Blocks of a JSON Lines file, split into lines by Arrow (no Python string per line)."""
    line_number = 0
    carry = b""
    pending = 0  # bytes read since the last block was yielded
    with path.open("rb") as handle:
        while True:
            block = handle.read(block_bytes)
            pending += len(block)
            data = carry + block
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                chunk, carry = data[:cut], data[cut + 1 :]
            else:
                chunk, carry = data, b""
                if not chunk:
                    return
            positions, lines, rejects = _split_lines(chunk, line_number)
            line_number += chunk.count(b"\n") + 1  # the newline at the cut ends this block
            yield LineBlock(positions, lines, rejects, pending)
            pending = 0
            if not block:
                return


def read_json_items(path: Path) -> list[str]:
    """Items of a JSON file: drawrowfly's `{"collector": [...]}` or an Apify JSON array."""
    with path.open("r", encoding="utf-8") as handle:
        document = json.load(handle)
    if isinstance(document, dict) and isinstance(document.get("collector"), list):
        items = document["collector"]
    elif isinstance(document, list):
        items = document
    else:
        raise ValueError(f"{path}: expected a JSON array of items or an object with 'collector'")
    return [json.dumps(item, ensure_ascii=False) for item in items]
