"""Turn a compiled mapping's result into rows to store and rows to reject."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from virtuna.hashtags import extract_hashtags
from virtuna.store.videos import VIDEO_SCHEMA, Reject

# Parses a source's raw hashtag value into names; None means "the source has no tag list".
HashtagParser = Callable[[str | None], list[str] | None]


@contextmanager
def mapping_connection(
    con: duckdb.DuckDBPyConnection | None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The given connection, or a private in-memory one closed afterwards."""
    if con is not None:
        yield con
        return
    with duckdb.connect() as own:
        yield own


@dataclass
class MappedBatch:
    """Rows ready for `upsert_videos` and the rows rejected, with reasons."""

    rows: pa.Table = field(default_factory=VIDEO_SCHEMA.empty_table)
    rejects: list[Reject] = field(default_factory=list)
    # The rows only fill what a stored video lacks (a reduced export that must not overwrite
    # the fuller record another file gave of the same video).
    fill_only: bool = False

    @property
    def read(self) -> int:
        """How many source rows this batch covers."""
        return self.rows.num_rows + len(self.rejects)


def finish_batch(
    con: duckdb.DuckDBPyConnection,
    select_sql: str,
    *,
    source: str,
    source_ref: str,
    parse_hashtags: HashtagParser,
    seen_keys: dict[str, int],
    scraped_at: datetime | None = None,
    keep_repeats: bool = False,
) -> MappedBatch:
    """Run a compiled mapping, add hashtags and constants, and split off the rejects.

    `seen_keys` (video id -> position) carries across the chunks of one source, so a video
    repeated within a source is rejected as a duplicate rather than stored twice, unless
    `keep_repeats` says repeats are re-scrapes (they are kept, and stored as updates).
    """
    table = con.sql(select_sql).to_arrow_table()
    positions = table["position"].to_pylist()
    reasons = table["reject_reason"].to_pylist()
    keys = table["platform_video_id"].to_pylist()
    tags_raw = table["hashtags_raw"].to_pylist()
    captions = (
        table["description"].to_pylist()
        if "description" in table.column_names
        else [None] * table.num_rows
    )

    keep: list[bool] = []
    hashtags: list[list[str]] = []
    rejects: list[Reject] = []
    for i, position in enumerate(positions):
        reason = reasons[i]
        tags: list[str] = []
        if reason is None:
            try:
                parsed = parse_hashtags(tags_raw[i])
                tags = extract_hashtags(captions[i]) if parsed is None else parsed
            except (ValueError, SyntaxError, TypeError) as exc:
                reason = f"hashtags: cannot parse ({exc})"
        if reason is None and not keep_repeats:
            first = seen_keys.setdefault(keys[i], position)
            if first != position:
                reason = f"duplicate video id {keys[i]} (first at position {first})"
        if reason is None:
            keep.append(True)
            hashtags.append(tags)
        else:
            keep.append(False)
            rejects.append(Reject(position=position, reason=reason, raw=None))

    if rejects:
        # The raw text goes to Python only for rejected rows; good rows keep it in Arrow.
        rejected_at = [i for i, kept in enumerate(keep) if not kept]
        raws = table["raw"].take(pa.array(rejected_at, type=pa.int64())).to_pylist()
        rejects = [Reject(r.position, r.reason, raw) for r, raw in zip(rejects, raws, strict=True)]
    good = table.filter(pa.array(keep, type=pa.bool_()))
    good = good.drop_columns(["reject_reason", "hashtags_raw"])
    n = good.num_rows
    good = good.append_column("hashtags", pa.array(hashtags, type=pa.list_(pa.string())))
    constants = {
        "platform": pa.array(["tiktok"] * n, type=pa.string()),
        "source": pa.array([source] * n, type=pa.string()),
        "source_ref": pa.array([source_ref] * n, type=pa.string()),
        "scraped_at": pa.array([scraped_at] * n, type=pa.timestamp("us")),
    }
    for name, values in constants.items():
        if name not in good.column_names:
            good = good.append_column(name, values)
    if "author_handle" in good.column_names:
        handles = pc.utf8_lower(pc.utf8_ltrim(good["author_handle"], characters="@"))
        good = good.set_column(good.column_names.index("author_handle"), "author_handle", handles)
    columns = [
        good[f.name] if f.name in good.column_names else pa.nulls(n, type=f.type)
        for f in VIDEO_SCHEMA
    ]
    return MappedBatch(rows=pa.Table.from_arrays(columns, schema=VIDEO_SCHEMA), rejects=rejects)
