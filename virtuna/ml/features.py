"""Point-in-time features: ONE builder for training rows and for predictions.

A row is a post "about to be published" at `posted_at` by `author_key`. The features are what a
draft has at that moment, and nothing else: the author's EARLIER posts (strictly before), the
follower count, the sound's and hashtags' use in the 7 days before the post's day, the caption,
the duration, the sound's originality, hour and weekday. No feature reads the post's own views,
likes, shares, comments or saves (tests change them and check that nothing moves). There are
no availability flags: whether a source recorded a field says which file a row came from, not
how the post did (training masks fields at random for the same reason, see `train.py`). The
creator's hearts and video count are not used: the hearts include the post's own likes. One
exception the data forces: followers and earlier posts' views are as they were when the data
was SCRAPED, after the post; the stores keep no history of them. A missing value is NaN, never
a placeholder.

Training rows are scraped videos (`training_rows`); a prediction is a draft plus the store now
(`draft_row`). Both go through `build_features`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from virtuna.hashtags import extract_hashtags
from virtuna.ml.history import (
    HISTORY_FEATURES,
    TREND_FEATURES,
    earlier_posts,
    epoch_us,
    point_in_time_features,
)
from virtuna.patterns import MATCHERS, matches_pattern
from virtuna.store.online import (
    AUTHOR_KEY_SQL,
    SOUND_KEY_SQL,
    KeyReader,
    Source,
    StoreReader,
    sound_key,
)

# The regex rule patterns whose matches become caption features.
RULE_PATTERNS = tuple(sorted(MATCHERS))
_CTA = re.compile(r"(?i)\b(?:follow|share|comment|save|like|subscribe|link in bio|duet|stitch)\b")
_EMOJI = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_MENTION = re.compile(r"@\w+")

# The row columns a draft or a scraped video provides to the builder.
ROW_COLUMNS = (
    "row_id",
    "author_key",
    "posted_at",
    "description",
    "hashtags",
    "duration_seconds",
    "sound_key",
    "sound_original",
    "author_followers",
)

PROFILE_FEATURES = ("log_followers",)
CAPTION_FEATURES = (
    "caption_length",
    "hashtag_count",
    "mention_count",
    "has_question",
    "has_cta",
    "emoji_count",
    *(f"rule_{p}" for p in RULE_PATTERNS),
)
POST_FEATURES = ("duration_seconds", "hour_utc", "weekday", "sound_original")
# Fields a draft may or may not carry; training masks each at random (see train.py).
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "followers": ("log_followers",),
    "duration": ("duration_seconds",),
    "sound": ("sound_original", "sound_uses_7d", "sound_log_views_7d", "sound_uses_before"),
}
# Bumped whenever a feature's definition changes: part of a model's data hash.
FEATURE_VERSION = 2
FEATURE_NAMES: tuple[str, ...] = (
    *HISTORY_FEATURES,
    *TREND_FEATURES,
    *PROFILE_FEATURES,
    *CAPTION_FEATURES,
    *POST_FEATURES,
)


def build_features(
    con: duckdb.DuckDBPyConnection | None,
    rows: pd.DataFrame,
    *,
    source: Source = "history",
    reader: KeyReader | None = None,
) -> pd.DataFrame:
    """The FEATURE_NAMES columns for rows (ROW_COLUMNS), in row order, indexed by row_id.

    `source` says where the point-in-time aggregates read the store at `con`: "history"
    reads every stored video set-based (training: many rows), "online" reads the rows' keys
    from the online tables (a prediction: its cost does not grow with the store); a `reader`
    (an engine's in-memory copy) replaces both. All give the same features
    (`virtuna.ml.history`)."""
    missing = set(ROW_COLUMNS) - set(rows.columns)
    if missing:
        raise ValueError(f"feature rows lack columns {sorted(missing)}")
    posted = pd.to_datetime(rows["posted_at"]).to_numpy(dtype="datetime64[us]")
    hashtags = [list(v) if is_sequence(v) else [] for v in rows["hashtags"]]
    columns: dict[str, object] = point_in_time_features(
        reader or StoreReader(_connection(con), source),
        list(rows["author_key"]),
        posted,
        [k if isinstance(k, str) else None for k in rows["sound_key"]],
        hashtags,
    )
    texts = ["" if not isinstance(t, str) else t for t in rows["description"]]
    columns["log_followers"] = np.log1p(_floats(rows["author_followers"]))
    columns["caption_length"] = [float(len(t)) for t in texts]
    columns["hashtag_count"] = [float(len(tags)) for tags in hashtags]
    columns["mention_count"] = [float(len(_MENTION.findall(t))) for t in texts]
    columns["has_question"] = [float("?" in t) for t in texts]
    columns["has_cta"] = [float(_CTA.search(t) is not None) for t in texts]
    columns["emoji_count"] = [float(len(_EMOJI.findall(t))) for t in texts]
    for pattern in RULE_PATTERNS:
        columns[f"rule_{pattern}"] = [float(matches_pattern(t, pattern)) for t in texts]
    columns["duration_seconds"] = _floats(rows["duration_seconds"])
    hours = posted.astype("datetime64[h]").astype(np.int64)
    columns["hour_utc"] = (hours % 24).astype(float)
    columns["weekday"] = ((hours // 24 + 3) % 7).astype(float)  # 1970-01-01 was a Thursday
    columns["sound_original"] = _floats(rows["sound_original"])
    values = np.column_stack([np.asarray(columns[name], dtype=float) for name in FEATURE_NAMES])
    # Rounded: sums may run in a different order from run to run, and a last-bit difference
    # would change early stopping and so the model.
    return pd.DataFrame(
        values.round(9),
        columns=list(FEATURE_NAMES),
        index=pd.Index(list(rows["row_id"]), name="row_id"),
    )


def _connection(con: duckdb.DuckDBPyConnection | None) -> duckdb.DuckDBPyConnection:
    if con is None:
        raise ValueError("features need a store connection or a reader")
    return con


def _floats(values: pd.Series) -> np.ndarray:
    """A column as floats, missing (None, NA) as NaN."""
    return np.array([np.nan if v is None or pd.isna(v) else float(v) for v in values])


def is_sequence(value: Any) -> bool:
    """A list-like cell (DuckDB returns LIST columns as lists or arrays)."""
    return isinstance(value, list | tuple | np.ndarray)


_TRAINING_SQL = f"""
SELECT platform || ':' || platform_video_id AS row_id,
       {AUTHOR_KEY_SQL} AS author_key, posted_at, description, hashtags,
       duration_seconds, {SOUND_KEY_SQL} AS sound_key, sound_original, author_followers,
       source, source_ref, scraped_at, views, likes, comments, shares
FROM scraped_videos
WHERE posted_at IS NOT NULL AND views IS NOT NULL AND views >= 0
  AND {AUTHOR_KEY_SQL} IS NOT NULL
ORDER BY posted_at, row_id
"""


def training_rows(
    con: duckdb.DuckDBPyConnection, sources: Iterable[str] | None = None
) -> pd.DataFrame:
    """Scraped videos as feature rows, with their outcomes (views, likes, ...) kept aside.

    Each row also names its `collection` (the data set it came from, see `collection_of`) and
    its `age_days` at scrape: from the recorded scrape time, else from the collection's newest
    post (a lower bound of when it was scraped).
    """
    from virtuna.ingest import collection_of

    rows = con.sql(_TRAINING_SQL).df()
    if sources is not None:
        rows = rows[rows["source"].isin(list(sources))].reset_index(drop=True)
    refs = rows["source_ref"].fillna(rows["source"]).astype(str)
    rows["collection"] = rows["source"] + ":" + refs.map(collection_of)
    newest = rows.groupby("collection")["posted_at"].transform("max")
    seen = pd.to_datetime(rows["scraped_at"]).fillna(newest)
    rows["age_days"] = (seen - rows["posted_at"]).dt.total_seconds() / 86_400
    return rows


def draft_rows(
    con: duckdb.DuckDBPyConnection | None,
    drafts: Sequence[dict[str, Any]],
    *,
    reader: KeyReader | None = None,
) -> pd.DataFrame:
    """Drafts as feature rows, read by key from the store's online tables (or `reader`). Each
    draft is a dict with `text`, `creator_handle`, `posted_at` and optionally
    `duration_seconds`, `hashtags`, `sound_id`, `sound_name`, `sound_original`, `row_id`
    (default "draft-<position>"). The followers are the creator's profile's, else those shown
    on the latest earlier post; the sound is keyed as a scraped video's would be."""
    if not drafts:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    reader = reader or StoreReader(_connection(con), "online")
    handles = sorted({h for d in drafts if isinstance(h := d.get("creator_handle"), str)})
    profiles = reader.profiles(handles)
    posts = reader.keyed("creator_posts", handles)
    return pd.DataFrame(
        [
            {
                "row_id": d.get("row_id", f"draft-{i}"),
                "author_key": d.get("creator_handle"),
                "posted_at": d["posted_at"],
                "description": d["text"],
                "hashtags": d["hashtags"]
                if d.get("hashtags") is not None
                else extract_hashtags(d["text"]),
                "duration_seconds": d.get("duration_seconds"),
                "sound_key": sound_key(
                    d.get("sound_id"), d.get("sound_name"), d.get("sound_original")
                ),
                "sound_original": d.get("sound_original"),
                "author_followers": _followers(profiles, posts, d),
            }
            for i, d in enumerate(drafts)
        ]
    )


def _followers(profiles: dict[str, Any], posts: Any, draft: dict[str, Any]) -> float | None:
    handle = draft.get("creator_handle")
    profile = profiles.get(handle) if isinstance(handle, str) else None
    if profile is not None and profile[0] is not None:
        return float(profile[0])
    own = posts.of(handle)
    if own is None:
        return None
    shown = earlier_posts(own, epoch_us(draft["posted_at"]))["followers"]
    shown = shown[~np.isnan(shown)]
    return float(shown[-1]) if len(shown) else None


def draft_row(
    con: duckdb.DuckDBPyConnection,
    *,
    text: str,
    creator_handle: str | None,
    posted_at: datetime,
    duration_seconds: float | None = None,
    hashtags: list[str] | None = None,
    sound_id: str | None = None,
    sound_name: str | None = None,
    sound_original: bool | None = None,
) -> pd.DataFrame:
    """One draft as a feature row (see `draft_rows`), with row_id "draft"."""
    return draft_rows(
        con,
        [
            {
                "row_id": "draft",
                "text": text,
                "creator_handle": creator_handle,
                "posted_at": posted_at,
                "duration_seconds": duration_seconds,
                "hashtags": hashtags,
                "sound_id": sound_id,
                "sound_name": sound_name,
                "sound_original": sound_original,
            }
        ],
    )
