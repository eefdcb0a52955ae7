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

from dataclasses import dataclass
from typing import Literal, Protocol

import duckdb
import numpy as np
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


def sound_key(sound_id: str | None, sound_name: str | None, original: bool | None) -> str | None:
    """SOUND_KEY_SQL for one draft's sound (a test checks both agree on every stored sound)."""
    if sound_id is not None:
        return sound_id
    if original or sound_name is None:
        return None
    # Character by character, as DuckDB's lower(): one character each (no "İ" -> "i̇") and
    # no context (no final sigma).
    return "".join(c.lower()[0] for c in sound_name.strip(" "))


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
    return f"SELECT * FROM {table}" + ("" if keys is None else f" WHERE {key} IN ({keys})")


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


# --------------------------------------------------------------------------- keyed arrays

Relation = Literal["creator_posts", "sound_days", "hashtag_days"]
# relation -> (its table, its key, the columns read as arrays, in the order they are sorted by)
_ARRAYS: dict[Relation, tuple[str, str, str]] = {
    "creator_posts": (
        "online_creator_posts",
        "author_key",
        "author_key, epoch_us(posted_at) AS t, video_id, views::DOUBLE AS views, "
        "likes::DOUBLE AS likes, comments::DOUBLE AS comments, shares::DOUBLE AS shares, "
        "followers::DOUBLE AS followers, hearts::DOUBLE AS hearts, videos::DOUBLE AS videos, "
        "verified::DOUBLE AS verified",
    ),
    "sound_days": (
        "online_sound_days",
        "sound_key",
        "sound_key, epoch_us(day) AS day, uses::DOUBLE AS uses, log_views",
    ),
    "hashtag_days": (
        "online_hashtag_days",
        "tag",
        "tag, epoch_us(day) AS day, uses::DOUBLE AS uses",
    ),
}
_SORT = {"creator_posts": "author_key, t, video_id", "sound_days": "1, 2", "hashtag_days": "1, 2"}


@dataclass(frozen=True)
class Keyed:
    """A relation's rows as arrays sorted by key, then time: numbers as floats (NaN for
    NULL), times as epoch microseconds, and where each key's rows run."""

    columns: dict[str, np.ndarray]
    runs: dict[str, tuple[int, int]]

    def of(self, key: object) -> dict[str, np.ndarray] | None:
        """The rows of one key (views into the arrays), or None when it has none."""
        found = self.runs.get(key) if isinstance(key, str) else None
        if found is None:
            return None
        start, end = found
        return {name: values[start:end] for name, values in self.columns.items()}


def read_keyed(
    con: duckdb.DuckDBPyConnection, source: Source, relation: Relation, keys: list[str] | None
) -> Keyed:
    """The relation's rows for `keys` (None: all of them) as `Keyed` arrays. The history
    reading is set-based over every stored video whatever the keys (training reads it whole)."""
    table, key, columns = _ARRAYS[relation]
    if source == "history" or keys is None:
        sql, params = _relation(table, source, None), None
    else:
        # One parameter per key lets DuckDB look each key up in the key's index.
        sql = _relation(table, source, ", ".join(f"${i + 1}" for i in range(len(keys))) or "NULL")
        params = keys
    fetched = con.execute(
        f"SELECT {columns} FROM ({sql}) ORDER BY {_SORT[relation]}", params
    ).fetchnumpy()
    arrays = {
        name: values.astype(float).filled(np.nan)
        if isinstance(values, np.ma.MaskedArray)
        else values
        for name, values in fetched.items()
    }
    for name in ("t", "day"):
        if name in arrays:
            arrays[name] = arrays[name].astype(np.int64)
    return Keyed(arrays, _runs(arrays[key]))


def _runs(keys: np.ndarray) -> dict[str, tuple[int, int]]:
    """Start and end positions of each key's run in a key-sorted array."""
    if len(keys) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    return {str(keys[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}


Profile = tuple[object, object, object, object]  # followers, hearts, videos, verified


class KeyReader(Protocol):
    """What point-in-time features and the creator context read by key."""

    def keyed(self, relation: Relation, keys: list[str]) -> Keyed:
        """The relation's rows of at least `keys`."""
        ...

    def profiles(self, handles: list[str]) -> dict[str, Profile]:
        """The stored profiles of the handles that have one."""
        ...


_PROFILES_SQL = "SELECT handle, followers, hearts, videos, verified FROM creators"


class StoreReader:
    """Reads a store connection: `history` set-based (training), `online` by key."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: Source = "online") -> None:
        """A reader of `con` in the given reading."""
        self.con = con
        self.source: Source = source

    def keyed(self, relation: Relation, keys: list[str]) -> Keyed:
        """The relation's rows for `keys`."""
        return read_keyed(self.con, self.source, relation, keys)

    def profiles(self, handles: list[str]) -> dict[str, Profile]:
        """The creators' stored profiles."""
        if not handles:
            return {}
        marks = ", ".join(f"${i + 1}" for i in range(len(handles)))
        rows = run(self.con, f"{_PROFILES_SQL} WHERE handle IN ({marks})", handles)
        return {str(r[0]): tuple(r[1:]) for r in rows}  # type: ignore[misc]


class MemoryReader:
    """Every online row and profile of a store, held as arrays and a dict: a look-up is a
    dictionary access, without a query. Built once per copy of the store (see
    `virtuna.engine.snapshot`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        """Read the whole online tables and the creators of the store at `con`."""
        self._keyed = {r: read_keyed(con, "online", r, None) for r in _ARRAYS}
        self._profiles = {str(r[0]): tuple(r[1:]) for r in run(con, _PROFILES_SQL)}

    def keyed(self, relation: Relation, keys: list[str]) -> Keyed:
        """The whole relation (it holds every key)."""
        return self._keyed[relation]

    def profiles(self, handles: list[str]) -> dict[str, Profile]:
        """The stored profiles among the handles."""
        return {h: self._profiles[h] for h in handles if h in self._profiles}
