"""Apify clockworks CSV exports: dataset items flattened into `a/b` and `a/0/b` columns.

Each row is folded back into the item it was flattened from (`authorMeta/fans` becomes
`{"authorMeta": {"fans": ...}}`, `hashtags/0/name` becomes `{"hashtags": [{"name": ...}]}`; an
empty cell is a field the item did not have) and mapped by the item mapping that serves Apify
JSON, so an export may have any set of columns: a field it lacks is NULL. The folded item is
what `raw` keeps.

Two schemas occur. Full exports have every field; reduced ones lack `id`, `createTime`, the
music and the hashtag list, so the item mapping takes the id from `webVideoUrl`, the post time
from the id and the hashtags from the caption. A reduced row only fills what a stored video
lacks: when a video is in a full and a reduced export, the full row survives whatever the order
of ingest. Between two exports of one schema the one ingested later wins (the ingest of a folder
goes in path order).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from virtuna.ingest.batch import MappedBatch
from virtuna.ingest.tiktok_items import map_items

NAME = "apify_csv"
SIGNATURE = frozenset({"webVideoUrl", "playCount", "diggCount", "authorMeta/fans"})
# A reduced export lacks these; a full one has both.
FULL_SCHEMA = frozenset({"id", "createTime"})


def _lists(node: Any) -> Any:
    """Objects keyed 0, 1, ... become lists in index order (gaps, i.e. empty cells, dropped)."""
    if not isinstance(node, dict):
        return node
    folded = {key: _lists(value) for key, value in node.items()}
    if folded and all(key.isdigit() for key in folded):
        return [folded[key] for key in sorted(folded, key=int)]
    return folded


def unflatten(header: list[str], row: list[str]) -> dict[str, Any]:
    """The item an Apify CSV row was flattened from; empty cells are absent fields."""
    item: dict[str, Any] = {}
    for column, value in zip(header, row, strict=True):
        if value == "":
            continue
        *parents, leaf = column.split("/")
        node = item
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # "a" and "a/b" both present: keep the scalar
                break
            node = child
        else:
            node[leaf] = value
    return _lists(item)


def is_reduced(header: list[str]) -> bool:
    """An export of the reduced schema (no id or createTime columns)."""
    return not FULL_SCHEMA.issubset(header)


def map_apify_csv_rows(
    header: list[str],
    rows: list[list[str]],
    positions: list[int],
    *,
    source_ref: str,
    seen_keys: dict[str, int],
    con: duckdb.DuckDBPyConnection | None = None,
) -> MappedBatch:
    """Map the data rows of one Apify CSV export to scraped_videos rows and rejects."""
    items = [json.dumps(unflatten(header, row), ensure_ascii=False) for row in rows]
    batch = map_items(
        items,
        source=NAME,
        source_ref=source_ref,
        positions=positions,
        seen_keys=seen_keys,
        con=con,
    )
    batch.fill_only = is_reduced(header)
    return batch
