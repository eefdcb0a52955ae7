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
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from virtuna.hashtags import normalize_hashtags
from virtuna.ingest.batch import MappedBatch, finish_batch
from virtuna.ingest.mapping import FieldMap, compile_select

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
ITEM_FIELDS = [
    FieldMap(column, f"v[{i + 1}]", kind, required)  # type: ignore[arg-type]
    for i, (column, kind, required) in enumerate(_COLUMNS)
]
_PATH_LIST = "[" + ", ".join(f"'{p}'" for p in _PATHS) + "]"
_SOURCE_SQL = (
    "SELECT position, raw, v[{tags}] AS hashtags_raw, v FROM ("
    " SELECT position, raw,"
    "  CASE WHEN json_valid(raw) AND json_type(raw) = 'OBJECT'"
    f"  THEN json_extract_string(raw, {_PATH_LIST}) END AS v"
    " FROM _items)"
).format(tags=len(_PATHS))
_STRUCTURE = [
    "CASE WHEN v IS NULL AND raw IS NOT NULL AND NOT json_valid(raw) THEN 'malformed JSON' "
    "WHEN v IS NULL THEN 'not a JSON object' END"
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
    raw_items: Sequence[str],
    *,
    source: str,
    source_ref: str,
    start_position: int = 0,
    positions: Sequence[int] | None = None,
    seen_keys: dict[str, int] | None = None,
    scraped_at: datetime | None = None,
) -> MappedBatch:
    """Map raw item JSON texts to scraped_videos rows and rejects."""
    if positions is None:
        positions = range(start_position, start_position + len(raw_items))
    items = pa.table(
        {
            "position": pa.array(positions, type=pa.int64()),
            "raw": pa.array(raw_items, type=pa.string()),
        }
    )
    with duckdb.connect() as con:
        con.register("_items", items)
        return finish_batch(
            con,
            ITEMS_SELECT,
            source=source,
            source_ref=source_ref,
            parse_hashtags=parse_item_hashtags,
            seen_keys={} if seen_keys is None else seen_keys,
            scraped_at=scraped_at,
        )


def read_jsonl(path: Path, chunk_rows: int = 20_000) -> Iterator[tuple[list[int], list[str], int]]:
    """Chunks of (line positions, non-blank lines, bytes consumed) from a JSON Lines file."""
    positions: list[int] = []
    lines: list[str] = []
    consumed = 0
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            consumed += len(line.encode("utf-8")) if not line.isascii() else len(line)
            if not line.strip():
                continue
            positions.append(number)
            lines.append(line.rstrip("\n"))
            if len(lines) >= chunk_rows:
                yield positions, lines, consumed
                positions, lines, consumed = [], [], 0
    if lines or consumed:
        yield positions, lines, consumed


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
