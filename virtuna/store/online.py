"""Online point-in-time inputs: the store's videos grouped by the keys a prediction looks up.

A prediction needs, for ONE draft, the creator's earlier posts and the recent daily use of its
sound and hashtags. Reading them from `scraped_videos` costs a scan of the whole table, so it
would grow with the store. These tables hold the same inputs grouped by key, one row per
creator, sound and hashtag, kept up to date by every upsert of videos (only the keys a batch
touches are rebuilt), and read by primary key:

    online_creators   every post of a creator (posted_at and outcomes, as parallel lists)
    online_sounds     a sound's uses and summed log views per day
    online_hashtags   a hashtag's uses per day

Each relation below has two readings with the same columns: `history` (set-based, over
`scraped_videos`, for training) and `online` (by key, from these tables). The features
(`virtuna.ml.features`) and the creator context are defined once over the relation, so both
paths compute the same numbers; a test checks it on real data.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import pyarrow as pa

from virtuna.store.connection import run

Source = Literal["history", "online"]

AUTHOR_KEY_SQL = "coalesce(author_handle, author_id)"
# A sound's key: its id, else its title when it is a shared track (a creator's own
# "original sound" titles say nothing about which sound it is).
SOUND_KEY_SQL = (
    "coalesce(sound_id, CASE WHEN NOT coalesce(sound_original, FALSE) "
    "THEN lower(trim(sound_name)) END)"
)

# One row per post: the columns a creator's history is computed from.
_POST_COLUMNS = (
    "video_id",
    "posted_at",
    "views",
    "likes",
    "comments",
    "shares",
    "followers",
    "hearts",
    "videos",
    "verified",
)
_CREATOR_POSTS_SQL = f"""
SELECT {AUTHOR_KEY_SQL} AS author_key, platform_video_id AS video_id, posted_at, views, likes,
       comments, shares, author_followers AS followers, author_hearts AS hearts,
       author_videos AS videos, author_verified AS verified
FROM scraped_videos
WHERE posted_at IS NOT NULL AND {AUTHOR_KEY_SQL} IS NOT NULL
"""
_SOUND_DAYS_SQL = f"""
SELECT {SOUND_KEY_SQL} AS sound_key, date_trunc('day', posted_at) AS day, count(*) AS uses,
       round(sum(ln(1 + views)), 9) AS log_views  -- rounded: sums vary in the last bit
FROM scraped_videos
WHERE posted_at IS NOT NULL AND {SOUND_KEY_SQL} IS NOT NULL
GROUP BY 1, 2
"""
_HASHTAG_DAYS_SQL = """
SELECT tag, date_trunc('day', posted_at) AS day, count(*) AS uses
FROM (SELECT unnest(hashtags) AS tag, posted_at FROM scraped_videos WHERE posted_at IS NOT NULL)
GROUP BY 1, 2
"""


def _keyed(sql: str, key: str, keys: str | None) -> str:
    return sql if keys is None else f"SELECT * FROM ({sql}) WHERE {key} IN ({keys})"


def creator_posts(source: Source, keys: str | None) -> str:
    """SQL of the posts (author_key, video_id, posted_at, views, ...) of the creators whose
    keys `keys` (a one-column query) yields; every creator's with `keys` None (history only)."""
    if source == "history":
        return _keyed(_CREATOR_POSTS_SQL, "author_key", keys)
    columns = ", ".join(f"unnest({c}) AS {c}" for c in _POST_COLUMNS)
    return f"SELECT author_key, {columns} FROM online_creators WHERE author_key IN ({keys})"


def sound_days(source: Source, keys: str | None) -> str:
    """SQL of (sound_key, day, uses, log_views) for the sounds `keys` yields."""
    if source == "history":
        return _keyed(_SOUND_DAYS_SQL, "sound_key", keys)
    return (
        "SELECT sound_key, unnest(days) AS day, unnest(uses) AS uses, "
        f"unnest(log_views) AS log_views FROM online_sounds WHERE sound_key IN ({keys})"
    )


def hashtag_days(source: Source, keys: str | None) -> str:
    """SQL of (tag, day, uses) for the hashtags `keys` yields."""
    if source == "history":
        return _keyed(_HASHTAG_DAYS_SQL, "tag", keys)
    return (
        "SELECT tag, unnest(days) AS day, unnest(uses) AS uses "
        f"FROM online_hashtags WHERE tag IN ({keys})"
    )


_ORDER = "ORDER BY posted_at, video_id"
# table -> (key column, the history relation of some keys, how its rows group into lists)
_REBUILD = {
    "online_creators": (
        "author_key",
        creator_posts,
        "SELECT author_key, "
        + ", ".join(f"list({c} {_ORDER}) AS {c}" for c in _POST_COLUMNS)
        + " FROM ({rows}) GROUP BY author_key",
    ),
    "online_sounds": (
        "sound_key",
        sound_days,
        "SELECT sound_key, list(day ORDER BY day) AS days, list(uses ORDER BY day) AS uses, "
        "list(log_views ORDER BY day) AS log_views FROM ({rows}) GROUP BY sound_key",
    ),
    "online_hashtags": (
        "tag",
        hashtag_days,
        "SELECT tag, list(day ORDER BY day) AS days, list(uses ORDER BY day) AS uses "
        "FROM ({rows}) GROUP BY tag",
    ),
}
ONLINE_TABLES = tuple(_REBUILD)


def touched_keys(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, list[str]]:
    """The creator, sound and hashtag keys of the videos in `relation` (a table or view with
    scraped_videos' columns), for `refresh_online`."""
    out: dict[str, list[str]] = {}
    for table, expression in (
        ("online_creators", AUTHOR_KEY_SQL),
        ("online_sounds", SOUND_KEY_SQL),
        ("online_hashtags", "unnest(hashtags)"),
    ):
        rows = run(con, f"SELECT DISTINCT k FROM (SELECT {expression} AS k FROM {relation})")
        out[table] = [str(r[0]) for r in rows if r[0] is not None]
    return out


def merge_keys(*groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """The union of several `touched_keys` results."""
    return {t: sorted({k for g in groups for k in g.get(t, [])}) for t in ONLINE_TABLES}


def refresh_online(
    con: duckdb.DuckDBPyConnection, keys: dict[str, list[str]] | None = None
) -> None:
    """Rebuild the online rows of the given keys (per table) from scraped_videos, or every
    row when `keys` is None. Run it in the transaction that changed the videos."""
    for table, (key, relation, grouped) in _REBUILD.items():
        if keys is None:
            run(con, f"DELETE FROM {table}")
            run(con, f"INSERT INTO {table} " + grouped.format(rows=relation("history", None)))
            continue
        wanted = keys.get(table, [])
        if not wanted:
            continue
        con.register("_online_keys", pa.table({"k": pa.array(wanted, type=pa.string())}))
        try:
            chosen = "SELECT k FROM _online_keys"
            run(con, f"DELETE FROM {table} WHERE {key} IN ({chosen})")
            run(con, f"INSERT INTO {table} " + grouped.format(rows=relation("history", chosen)))
        finally:
            con.unregister("_online_keys")
