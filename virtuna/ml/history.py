"""Point-in-time aggregates of feature rows: ONE definition, fed from either store reading.

A row (a post about to be published at `posted_at` by `author_key`, with a sound and
hashtags) sees only what came before it:

- its author's earlier posts with views, strictly before `posted_at`: how many, their log-view
  statistics, how many in the last 30 days, the mean of the last three, the median engagement,
  the hours since the last one;
- its sound's and hashtags' daily uses on the days strictly before its own day: in the 7 days
  before, and (for the sound) ever.

The inputs are the relations of `virtuna.store.online`, read set-based over every stored video
("history", for training) or by key from the online tables ("online", for a prediction); the
numbers are computed here, in one place, so both readings give the same features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import numpy as np

from virtuna.store.online import Source, creator_posts, hashtag_days, sound_days

TREND_DAYS = 7
RECENT_DAYS = 30
_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S

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
SOUND_FEATURES = ("sound_uses_7d", "sound_log_views_7d", "sound_uses_before")
HASHTAG_FEATURES = ("hashtag_max_uses_7d", "hashtag_mean_log_uses_7d")
TREND_FEATURES = (*SOUND_FEATURES, *HASHTAG_FEATURES)


def point_in_time_features(
    con: duckdb.DuckDBPyConnection,
    author_keys: Sequence[object],
    posted_at: np.ndarray,
    sound_keys: Sequence[object],
    hashtags: Sequence[list[str]],
    *,
    source: Source,
) -> dict[str, np.ndarray]:
    """HISTORY_FEATURES and TREND_FEATURES of rows (parallel sequences), NaN where missing."""
    moments = posted_at.astype("datetime64[us]").astype(np.int64)
    return (
        _history(con, source, author_keys, moments)
        | _sounds(con, source, sound_keys, moments)
        | _hashtags(con, source, hashtags, moments)
    )


def _keys(values: Sequence[object]) -> list[str]:
    return sorted({v for v in values if isinstance(v, str)})


def _read(
    con: duckdb.DuckDBPyConnection,
    relation: Callable[[Source, str | None], str],
    source: Source,
    keys: list[str],
    columns: str,
) -> dict[str, np.ndarray]:
    """`columns` of the relation for `keys` (by key from the online tables, whole for the
    history), as arrays: numbers as floats with NaN for NULL, times as epoch microseconds."""
    if source == "history":
        sql, params = relation("history", None), None
    else:
        # One parameter per key lets DuckDB look each key up in the primary-key index.
        sql = relation("online", ", ".join(f"${i + 1}" for i in range(len(keys))) or "NULL")
        params = keys
    fetched = con.execute(f"SELECT {columns} FROM ({sql})", params).fetchnumpy()
    return {
        name: values.astype(float).filled(np.nan)
        if isinstance(values, np.ma.MaskedArray)
        else values
        for name, values in fetched.items()
    }


def _groups(keys: np.ndarray) -> dict[str, tuple[int, int]]:
    """Start and end positions of each key's run in a key-sorted array."""
    if len(keys) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    return {str(keys[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}


def _sorted(data: dict[str, np.ndarray], *keys: str) -> dict[str, np.ndarray]:
    """The arrays ordered by `keys` (first key first)."""
    order = np.lexsort([data[k] for k in reversed(keys)])
    return {name: values[order] for name, values in data.items()}


_POSTS = (
    "author_key, video_id, epoch_us(posted_at) AS t, views::DOUBLE AS views, "
    "likes::DOUBLE AS likes, comments::DOUBLE AS comments, shares::DOUBLE AS shares"
)


def _history(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    author_keys: Sequence[object],
    moments: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(moments)
    out = {name: np.full(n, np.nan) for name in HISTORY_FEATURES}
    out["prior_posts"] = np.zeros(n)
    out["prior_posts_30d"] = np.zeros(n)
    posts = _read(con, creator_posts, source, _keys(author_keys), _POSTS)
    with_views = ~np.isnan(posts["views"])
    posts = _sorted({k: v[with_views] for k, v in posts.items()}, "author_key", "t", "video_id")
    views, times = posts["views"], posts["t"].astype(np.int64)
    log_views = np.log1p(views)
    clicks = sum(np.nan_to_num(posts[c], nan=0.0) for c in ("likes", "comments", "shares"))
    with np.errstate(divide="ignore", invalid="ignore"):
        engagement = np.where(views != 0, clicks / views, np.nan)
    groups = _groups(posts["author_key"])
    for row, key in enumerate(author_keys):
        found = groups.get(key) if isinstance(key, str) else None
        if found is None:
            continue
        start, end = found
        k = int(np.searchsorted(times[start:end], moments[row], side="left"))
        if k == 0:
            continue
        lv = log_views[start : start + k]
        out["prior_posts"][row] = k
        window = moments[row] - RECENT_DAYS * _US_PER_DAY
        out["prior_posts_30d"][row] = k - int(np.searchsorted(times[start:end], window, "left"))
        out["prior_median_log_views"][row] = np.median(lv)
        out["prior_mean_log_views"][row] = lv.mean()
        out["prior_max_log_views"][row] = lv.max()
        out["prior_min_log_views"][row] = lv.min()
        out["prior_std_log_views"][row] = lv.std(ddof=1) if k > 1 else np.nan
        out["prior_p75_log_views"][row] = np.quantile(lv, 0.75)
        out["prior_last3_log_views"][row] = lv[-3:].mean()
        rates = engagement[start : start + k]
        rates = rates[~np.isnan(rates)]
        out["prior_median_engagement"][row] = np.median(rates) if len(rates) else np.nan
        seconds = moments[row] // _US_PER_S - times[start + k - 1] // _US_PER_S
        out["hours_since_last_post"][row] = seconds / 3600.0
    return out


def _day(moments: np.ndarray) -> np.ndarray:
    return moments // _US_PER_DAY * _US_PER_DAY


def _window(days: np.ndarray, today: int) -> tuple[int, int]:
    """Positions of the days before `today` and of the TREND_DAYS days before it."""
    before = int(np.searchsorted(days, today, side="left"))
    week = int(np.searchsorted(days, today - TREND_DAYS * _US_PER_DAY, side="left"))
    return week, before


def _sounds(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    sound_keys: Sequence[object],
    moments: np.ndarray,
) -> dict[str, np.ndarray]:
    has_sound = np.array([isinstance(k, str) for k in sound_keys], dtype=bool)
    # A row with a sound and no earlier use has zero uses; a row without a sound has none.
    out = {name: np.where(has_sound, 0.0, np.nan) for name in SOUND_FEATURES}
    days = _read(
        con,
        sound_days,
        source,
        _keys(sound_keys),
        "sound_key, epoch_us(day) AS day, uses::DOUBLE AS uses, log_views",
    )
    days = _sorted(days, "sound_key", "day")
    day, uses = days["day"].astype(np.int64), days["uses"]
    log_views = np.nan_to_num(days["log_views"], nan=0.0)
    groups = _groups(days["sound_key"])
    today = _day(moments)
    for row, key in enumerate(sound_keys):
        found = groups.get(key) if isinstance(key, str) else None
        if found is None:
            continue
        start, end = found
        week, before = _window(day[start:end], int(today[row]))
        out["sound_uses_before"][row] = uses[start : start + before].sum()
        out["sound_uses_7d"][row] = uses[start + week : start + before].sum()
        out["sound_log_views_7d"][row] = log_views[start + week : start + before].sum()
    return out


def _hashtags(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    hashtags: Sequence[list[str]],
    moments: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(moments)
    out = {name: np.full(n, np.nan) for name in HASHTAG_FEATURES}
    tags = sorted({t for row in hashtags for t in row})
    days = _read(con, hashtag_days, source, tags, "tag, epoch_us(day) AS day, uses::DOUBLE AS uses")
    days = _sorted(days, "tag", "day")
    day, uses = days["day"].astype(np.int64), days["uses"]
    groups = _groups(days["tag"])
    today = _day(moments)
    for row, row_tags in enumerate(hashtags):
        if not row_tags:
            continue
        counts = []
        for tag in dict.fromkeys(row_tags):
            found = groups.get(tag)
            if found is None:
                counts.append(0.0)
                continue
            start, end = found
            week, before = _window(day[start:end], int(today[row]))
            counts.append(float(uses[start + week : start + before].sum()))
        out["hashtag_max_uses_7d"][row] = max(counts)
        out["hashtag_mean_log_uses_7d"][row] = float(np.mean(np.log1p(counts)))
    return out
