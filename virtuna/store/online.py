"""Online point-in-time inputs: what a prediction needs of the store, kept by the keys it
looks up.

A prediction needs, for ONE draft, the creator's earlier posts and the recent daily use of its
sound and hashtags. Reading them from `scraped_videos` costs a scan of the whole table, so it
would grow with the store. These tables hold the same inputs, indexed by the key a prediction
looks up, and every upsert of videos updates only what its batch touches (the batch's own
posts, the (sound, day) and (hashtag, day) counts of the days its videos fall on), so keeping
them costs in proportion to the batch, not to the store:

    online_creator_posts   one row per post: the creator, the post time and its outcomes
    online_sound_days      a sound's uses and summed log views per day
    online_hashtag_days    a hashtag's uses per day

Each relation below has two readings with the same columns: `history` (set-based, over
`scraped_videos`, for training) and `online` (by key, from these tables). The features
(`virtuna.ml.history`) and the creator context are defined once over the relations, so both
readings give the same numbers; a test checks it on real data.
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
DAY_SQL = "date_trunc('day', posted_at)"

# `{where}` narrows the videos read (to a batch's keys and days when keeping the tables).
_CREATOR_POSTS_SQL = f"""
SELECT {AUTHOR_KEY_SQL} AS author_key, platform_video_id AS video_id, posted_at, views, likes,
       comments, shares, author_followers AS followers, author_hearts AS hearts,
       author_videos AS videos, author_verified AS verified
FROM {{videos}}
WHERE posted_at IS NOT NULL AND {AUTHOR_KEY_SQL} IS NOT NULL {{where}}
"""
_SOUND_DAYS_SQL = f"""
SELECT {SOUND_KEY_SQL} AS sound_key, {DAY_SQL} AS day, count(*) AS uses,
       sum(ln(1 + views)) AS log_views
FROM {{videos}}
WHERE posted_at IS NOT NULL AND {SOUND_KEY_SQL} IS NOT NULL {{where}}
GROUP BY 1, 2
"""
_HASHTAG_DAYS_SQL = f"""
SELECT tag, day, count(*) AS uses
FROM (SELECT unnest(hashtags) AS tag, {DAY_SQL} AS day FROM {{videos}}
      WHERE posted_at IS NOT NULL {{where}})
GROUP BY 1, 2
"""

# table -> (the key predictions look it up by, its history relation over `{videos}`)
_TABLES = {
    "online_creator_posts": ("author_key", _CREATOR_POSTS_SQL),
    "online_sound_days": ("sound_key", _SOUND_DAYS_SQL),
    "online_hashtag_days": ("tag", _HASHTAG_DAYS_SQL),
}
ONLINE_TABLES = tuple(_TABLES)


def _relation(table: str, source: Source, keys: str | None) -> str:
    key, history = _TABLES[table]
    if source == "history":
        sql = history.format(videos="scraped_videos", where="")
        return sql if keys is None else f"SELECT * FROM ({sql}) WHERE {key} IN ({keys})"
    return f"SELECT * FROM {table} WHERE {key} IN ({keys})"


def creator_posts(source: Source, keys: str | None) -> str:
    """SQL of the posts (author_key, video_id, posted_at, views, ...) of the creators in
    `keys` (SQL of a value list or a one-column query; None: every creator, history only)."""
    return _relation("online_creator_posts", source, keys)


def sound_days(source: Source, keys: str | None) -> str:
    """SQL of (sound_key, day, uses, log_views) for the sounds in `keys`."""
    return _relation("online_sound_days", source, keys)


def hashtag_days(source: Source, keys: str | None) -> str:
    """SQL of (tag, day, uses) for the hashtags in `keys`."""
    return _relation("online_hashtag_days", source, keys)


# What a batch of videos touches, read from a relation with scraped_videos' columns.
_TOUCHED_SQL = {
    "online_creator_posts": "SELECT DISTINCT platform_video_id AS k, NULL::TIMESTAMP AS d FROM {r}",
    "online_sound_days": f"SELECT DISTINCT {SOUND_KEY_SQL} AS k, {DAY_SQL} AS d FROM {{r}} "
    "WHERE posted_at IS NOT NULL",
    "online_hashtag_days": f"SELECT DISTINCT unnest(hashtags) AS k, {DAY_SQL} AS d FROM {{r}} "
    "WHERE posted_at IS NOT NULL",
}
Touched = dict[str, set[tuple[str, object]]]


def touched_keys(con: duckdb.DuckDBPyConnection, relation: str) -> Touched:
    """What the videos in `relation` (a table or a parenthesised query with scraped_videos'
    columns) contribute to: their own posts, and their (sound, day) and (hashtag, day) counts."""
    return {
        table: {(str(k), d) for k, d in run(con, sql.format(r=relation)) if k is not None}
        for table, sql in _TOUCHED_SQL.items()
    }


def merge_keys(*groups: Touched) -> Touched:
    """The union of several `touched_keys` results."""
    return {t: set().union(*(g.get(t, set()) for g in groups)) for t in ONLINE_TABLES}


def refresh_online(con: duckdb.DuckDBPyConnection, touched: Touched | None = None) -> None:
    """Recompute the online rows a batch touched (`touched_keys` of its videos before and
    after the batch) from scraped_videos, or every row when `touched` is None. Run it in the
    transaction that changed the videos."""
    for table, (key, history) in _TABLES.items():
        if touched is None:
            run(con, f"DELETE FROM {table}")
            run(con, f"INSERT INTO {table} {history.format(videos='scraped_videos', where='')}")
            continue
        pairs = sorted(touched.get(table, set()), key=str)
        if not pairs:
            continue
        keys = pa.table(
            {
                "k": pa.array([k for k, _ in pairs], type=pa.string()),
                "d": pa.array([d for _, d in pairs], type=pa.timestamp("us")),
            }
        )
        con.register("_touched", keys)
        try:
            if table == "online_creator_posts":
                ids = "SELECT k FROM _touched"
                run(con, f"DELETE FROM {table} WHERE video_id IN ({ids})")
                fresh = history.format(
                    videos="scraped_videos", where=f"AND platform_video_id IN ({ids})"
                )
            else:
                match = f"({key}, day) IN (SELECT k, d FROM _touched)"
                run(con, f"DELETE FROM {table} WHERE {match}")
                # Only the touched days' videos are read, then only the touched pairs kept.
                days = f"AND {DAY_SQL} IN (SELECT DISTINCT d FROM _touched)"
                fresh = history.format(videos="scraped_videos", where=days)
                fresh = f"SELECT * FROM ({fresh}) WHERE {match}"
            run(con, f"INSERT INTO {table} {fresh}")
        finally:
            con.unregister("_touched")


# Adding new videos' counts to what is kept (NULL: no views known on either side).
_ADD = {
    "online_creator_posts": "",
    "online_sound_days": (
        "ON CONFLICT (sound_key, day) DO UPDATE SET uses = online_sound_days.uses + "
        "excluded.uses, log_views = CASE WHEN online_sound_days.log_views IS NULL THEN "
        "excluded.log_views WHEN excluded.log_views IS NULL THEN online_sound_days.log_views "
        "ELSE online_sound_days.log_views + excluded.log_views END"
    ),
    "online_hashtag_days": (
        "ON CONFLICT (tag, day) DO UPDATE SET uses = online_hashtag_days.uses + excluded.uses"
    ),
}


def add_new_videos(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    """Add videos that were not stored before (a table or view with scraped_videos' columns)
    to the online tables: their posts, and their uses added to the days' counts. The same
    numbers as recounting, without reading the stored videos."""
    for table, (_, history) in _TABLES.items():
        run(con, f"INSERT INTO {table} {history.format(videos=relation, where='')} {_ADD[table]}")
