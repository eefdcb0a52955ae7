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

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from virtuna.engine.rules import MATCHERS, matches_pattern
from virtuna.hashtags import extract_hashtags

TREND_DAYS = 7
# The regex rule patterns whose matches become caption features.
RULE_PATTERNS = tuple(sorted(MATCHERS))
_CTA = r"(?i)\b(?:follow|share|comment|save|like|subscribe|link in bio|duet|stitch)\b"
_EMOJI = r"[\U0001F300-\U0001FAFF\u2600-\u27BF]"

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

_HISTORY_SQL = """
SELECT d.row_id,
       count(v.views) AS prior_posts,
       median(ln(1 + v.views)) AS prior_median_log_views,
       avg(ln(1 + v.views)) AS prior_mean_log_views,
       max(ln(1 + v.views)) AS prior_max_log_views,
       min(ln(1 + v.views)) AS prior_min_log_views,
       stddev_samp(ln(1 + v.views)) AS prior_std_log_views,
       quantile_cont(ln(1 + v.views), 0.75) AS prior_p75_log_views,
       count(v.views) FILTER (WHERE v.posted_at >= d.posted_at - INTERVAL 30 DAY)
           AS prior_posts_30d,
       list_avg(list_slice(list(ln(1 + v.views) ORDER BY v.posted_at DESC), 1, 3))
           AS prior_last3_log_views,
       median((coalesce(v.likes, 0) + coalesce(v.comments, 0) + coalesce(v.shares, 0))
              / nullif(v.views, 0)) AS prior_median_engagement,
       date_diff('second', max(v.posted_at), any_value(d.posted_at)) / 3600.0
           AS hours_since_last_post
FROM _rows d
LEFT JOIN scraped_videos v
  ON coalesce(v.author_handle, v.author_id) = d.author_key
 AND v.posted_at < d.posted_at
 AND v.views IS NOT NULL
GROUP BY d.row_id
"""

# A sound's key: its id, else its title when it is a shared track (a creator's own
# "original sound" titles say nothing about which sound it is).
SOUND_KEY_SQL = (
    "coalesce(sound_id, CASE WHEN NOT coalesce(sound_original, FALSE) "
    "THEN lower(trim(sound_name)) END)"
)

# Sound and hashtag use by day; a row sees the days strictly before its own day.
_SOUND_SQL = f"""
WITH days AS (
    SELECT {SOUND_KEY_SQL} AS sound_key,
           date_trunc('day', posted_at) AS day, count(*) AS n, sum(ln(1 + views)) AS lv
    FROM scraped_videos WHERE posted_at IS NOT NULL GROUP BY 1, 2)
SELECT d.row_id,
       sum(s.n) FILTER (WHERE s.day >= date_trunc('day', d.posted_at) - INTERVAL {TREND_DAYS} DAY)
           AS sound_uses_7d,
       sum(s.lv) FILTER (WHERE s.day >= date_trunc('day', d.posted_at) - INTERVAL {TREND_DAYS} DAY)
           AS sound_log_views_7d,
       sum(s.n) AS sound_uses_before
FROM _rows d
LEFT JOIN days s ON s.sound_key = d.sound_key AND s.day < date_trunc('day', d.posted_at)
GROUP BY d.row_id
"""

_HASHTAG_SQL = f"""
WITH tag_days AS (
    SELECT tag, date_trunc('day', posted_at) AS day, count(*) AS n
    FROM (SELECT unnest(hashtags) AS tag, posted_at FROM scraped_videos
          WHERE posted_at IS NOT NULL)
    GROUP BY 1, 2),
row_tags AS (SELECT row_id, posted_at, unnest(hashtags) AS tag FROM _rows),
per_tag AS (
    SELECT r.row_id, r.tag, coalesce(sum(t.n), 0) AS uses
    FROM row_tags r
    LEFT JOIN tag_days t ON t.tag = r.tag AND t.day < date_trunc('day', r.posted_at)
     AND t.day >= date_trunc('day', r.posted_at) - INTERVAL {TREND_DAYS} DAY
    GROUP BY 1, 2)
SELECT row_id, max(uses) AS hashtag_max_uses_7d, avg(ln(1 + uses)) AS hashtag_mean_log_uses_7d
FROM per_tag GROUP BY row_id
"""

HISTORY_FEATURES = (
    "prior_posts",
    "prior_median_log_views",
    "prior_mean_log_views",
    "prior_max_log_views",
    "prior_min_log_views",
    "prior_std_log_views",
    "prior_p75_log_views",
    "prior_posts_30d",
    "prior_last3_log_views",
    "prior_median_engagement",
    "hours_since_last_post",
)
TREND_FEATURES = (
    "sound_uses_7d",
    "sound_log_views_7d",
    "sound_uses_before",
    "hashtag_max_uses_7d",
    "hashtag_mean_log_uses_7d",
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


def build_features(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> pd.DataFrame:
    """The FEATURE_NAMES columns for rows (ROW_COLUMNS), in row order, indexed by row_id."""
    missing = set(ROW_COLUMNS) - set(rows.columns)
    if missing:
        raise ValueError(f"feature rows lack columns {sorted(missing)}")
    frame = rows.loc[:, list(ROW_COLUMNS)].reset_index(drop=True).copy()
    frame["hashtags"] = frame["hashtags"].map(lambda v: list(v) if _is_list(v) else [])
    frame["posted_at"] = pd.to_datetime(frame["posted_at"])
    con.register("_rows", frame[["row_id", "author_key", "posted_at", "sound_key", "hashtags"]])
    try:
        history = con.sql(_HISTORY_SQL).df().set_index("row_id")
        sounds = con.sql(_SOUND_SQL).df().set_index("row_id")
        tags = con.sql(_HASHTAG_SQL).df().set_index("row_id")
    finally:
        con.unregister("_rows")
    out = pd.DataFrame(index=pd.Index(frame["row_id"], name="row_id"))
    out = out.join(history).join(sounds).join(tags)
    no_history = [f for f in HISTORY_FEATURES if f not in ("prior_posts", "prior_posts_30d")]
    out.loc[out["prior_posts"] == 0, no_history] = np.nan
    no_sound = frame["sound_key"].isna().to_numpy()
    out.loc[no_sound, ["sound_uses_7d", "sound_log_views_7d", "sound_uses_before"]] = np.nan
    has_sound = ~no_sound
    out.loc[has_sound, ["sound_uses_7d", "sound_log_views_7d", "sound_uses_before"]] = out.loc[
        has_sound, ["sound_uses_7d", "sound_log_views_7d", "sound_uses_before"]
    ].fillna(0)
    indexed = frame.set_index("row_id")
    out["log_followers"] = np.log1p(indexed["author_followers"].astype(float))
    text = indexed["description"].fillna("").astype(str)
    out["caption_length"] = text.str.len().astype(float)
    out["hashtag_count"] = indexed["hashtags"].map(len).astype(float)
    out["mention_count"] = text.str.count(r"@\w+").astype(float)
    out["has_question"] = text.str.contains("?", regex=False).astype(float)
    out["has_cta"] = text.str.contains(_CTA, regex=True).astype(float)
    out["emoji_count"] = text.str.count(_EMOJI).astype(float)
    for pattern in RULE_PATTERNS:
        out[f"rule_{pattern}"] = [float(matches_pattern(t, pattern)) for t in text]
    posted = pd.to_datetime(indexed["posted_at"])
    out["duration_seconds"] = indexed["duration_seconds"].astype(float)
    out["hour_utc"] = posted.dt.hour.astype(float)
    out["weekday"] = posted.dt.day_of_week.astype(float)
    out["sound_original"] = indexed["sound_original"].astype(float)
    # Rounded: DuckDB may sum in a different order from run to run, and a last-bit difference
    # would change early stopping and so the model.
    return out.loc[:, list(FEATURE_NAMES)].astype(float).round(9)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


_TRAINING_SQL = f"""
SELECT platform || ':' || platform_video_id AS row_id,
       coalesce(author_handle, author_id) AS author_key, posted_at, description, hashtags,
       duration_seconds, {SOUND_KEY_SQL} AS sound_key, sound_original, author_followers,
       source, source_ref, scraped_at, views, likes, comments, shares
FROM scraped_videos
WHERE posted_at IS NOT NULL AND views IS NOT NULL AND views >= 0
  AND coalesce(author_handle, author_id) IS NOT NULL
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
    """One draft as a feature row: the creator's followers from the store now, the sound keyed
    as a scraped video's would be."""
    followers = None
    if creator_handle:
        found = con.execute(
            "SELECT followers FROM creators WHERE handle = ?", [creator_handle]
        ).fetchall()
        latest = con.execute(
            "SELECT arg_max(author_followers, posted_at) FROM scraped_videos "
            "WHERE author_handle = ? AND posted_at < ? AND author_followers IS NOT NULL",
            [creator_handle, posted_at],
        ).fetchall()
        followers = found[0][0] if found and found[0][0] is not None else None
        if followers is None and latest:
            followers = latest[0][0]
    (key,) = con.execute(
        f"SELECT {SOUND_KEY_SQL} FROM (SELECT ?::VARCHAR AS sound_id, ?::VARCHAR AS sound_name, "
        "?::BOOLEAN AS sound_original)",
        [sound_id, sound_name, sound_original],
    ).fetchall()[0]
    return pd.DataFrame(
        [
            {
                "row_id": "draft",
                "author_key": creator_handle,
                "posted_at": posted_at,
                "description": text,
                "hashtags": hashtags if hashtags is not None else extract_hashtags(text),
                "duration_seconds": duration_seconds,
                "sound_key": key,
                "sound_original": sound_original,
                "author_followers": followers,
            }
        ]
    )
