"""Point-in-time aggregates of feature rows: ONE definition, fed from either store reading.

A row (a post about to be published at `posted_at` by `author_key`, with a sound and
hashtags) sees only what came before it:

- its author's earlier posts with views, strictly before `posted_at`: how many, their log-view
  statistics, how many in the last 30 days, the mean of the last three, the median engagement,
  the hours since the last one;
- its sound's and hashtags' daily uses on the days strictly before its own day: in the 7 days
  before, and (for the sound) ever.

The inputs are the relations of `virtuna.store.online` as key-sorted arrays from a `KeyReader`:
set-based over every stored video ("history", for training), by key from the online tables
("online"), or from an engine's in-memory copy of them (`MemoryReader`, a prediction). The
numbers are computed here, in one place, so every reading gives the same features.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from virtuna.store.online import KeyReader

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
    reader: KeyReader,
    author_keys: Sequence[object],
    posted_at: np.ndarray,
    sound_keys: Sequence[object],
    hashtags: Sequence[list[str]],
) -> dict[str, np.ndarray]:
    """HISTORY_FEATURES and TREND_FEATURES of rows (parallel sequences), NaN where missing."""
    moments = posted_at.astype("datetime64[us]").astype(np.int64)
    return (
        _history(reader, author_keys, moments)
        | _sounds(reader, sound_keys, moments)
        | _hashtags(reader, hashtags, moments)
    )


_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """A moment as epoch microseconds (a naive moment is UTC, as the store keeps times)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH) // _US


def moment_of(us: int) -> datetime:
    """Epoch microseconds as a naive UTC datetime (how the store returns times)."""
    return _EPOCH + timedelta(microseconds=int(us))


def _keys(values: Sequence[object]) -> list[str]:
    return sorted({v for v in values if isinstance(v, str)})


def earlier_posts(posts: dict[str, np.ndarray], moment: int) -> dict[str, np.ndarray]:
    """A creator's posts (one key's `creator_posts` rows, sorted by time) strictly before
    `moment` (epoch microseconds)."""
    k = int(np.searchsorted(posts["t"], moment, side="left"))
    return {name: values[:k] for name, values in posts.items()}


def engagement_rates(posts: dict[str, np.ndarray]) -> np.ndarray:
    """(likes + comments + shares) / views per post; NaN without likes or views."""
    clicks = (
        posts["likes"]
        + np.nan_to_num(posts["comments"], nan=0.0)
        + np.nan_to_num(posts["shares"], nan=0.0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(posts["views"] != 0, clicks / posts["views"], np.nan)


def _history(
    reader: KeyReader, author_keys: Sequence[object], moments: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(moments)
    out = {name: np.full(n, np.nan) for name in HISTORY_FEATURES}
    out["prior_posts"] = np.zeros(n)
    out["prior_posts_30d"] = np.zeros(n)
    keyed = reader.keyed("creator_posts", _keys(author_keys))
    for row, key in enumerate(author_keys):
        posts = keyed.of(key)
        if posts is None:
            continue
        earlier = earlier_posts(posts, int(moments[row]))
        views = earlier["views"]
        seen = ~np.isnan(views)
        times, lv = earlier["t"][seen], np.log1p(views[seen])
        k = len(lv)
        if k == 0:
            continue
        out["prior_posts"][row] = k
        window = moments[row] - RECENT_DAYS * _US_PER_DAY
        out["prior_posts_30d"][row] = k - int(np.searchsorted(times, window, "left"))
        out["prior_median_log_views"][row] = np.median(lv)
        out["prior_mean_log_views"][row] = lv.mean()
        out["prior_max_log_views"][row] = lv.max()
        out["prior_min_log_views"][row] = lv.min()
        out["prior_std_log_views"][row] = lv.std(ddof=1) if k > 1 else np.nan
        out["prior_p75_log_views"][row] = np.quantile(lv, 0.75)
        out["prior_last3_log_views"][row] = lv[-3:].mean()
        # The feature counts a post's missing likes as none (the models are trained so).
        rates = engagement_rates({**earlier, "likes": np.nan_to_num(earlier["likes"])})[seen]
        rates = rates[~np.isnan(rates)]
        out["prior_median_engagement"][row] = np.median(rates) if len(rates) else np.nan
        seconds = moments[row] // _US_PER_S - times[-1] // _US_PER_S
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
    reader: KeyReader, sound_keys: Sequence[object], moments: np.ndarray
) -> dict[str, np.ndarray]:
    has_sound = np.array([isinstance(k, str) for k in sound_keys], dtype=bool)
    # A row with a sound and no earlier use has zero uses; a row without a sound has none.
    out = {name: np.where(has_sound, 0.0, np.nan) for name in SOUND_FEATURES}
    keyed = reader.keyed("sound_days", _keys(sound_keys))
    today = _day(moments)
    for row, key in enumerate(sound_keys):
        days = keyed.of(key)
        if days is None:
            continue
        week, before = _window(days["day"], int(today[row]))
        uses, log_views = days["uses"], days["log_views"]
        out["sound_uses_before"][row] = uses[:before].sum()
        out["sound_uses_7d"][row] = uses[week:before].sum()
        out["sound_log_views_7d"][row] = np.nan_to_num(log_views[week:before], nan=0.0).sum()
    return out


def _hashtags(
    reader: KeyReader, hashtags: Sequence[list[str]], moments: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(moments)
    out = {name: np.full(n, np.nan) for name in HASHTAG_FEATURES}
    tags = sorted({t for row in hashtags for t in row})
    keyed = reader.keyed("hashtag_days", tags)
    today = _day(moments)
    for row, row_tags in enumerate(hashtags):
        if not row_tags:
            continue
        counts = []
        for tag in dict.fromkeys(row_tags):
            days = keyed.of(tag)
            if days is None:
                counts.append(0.0)
                continue
            week, before = _window(days["day"], int(today[row]))
            counts.append(float(days["uses"][week:before].sum()))
        out["hashtag_max_uses_7d"][row] = max(counts)
        out["hashtag_mean_log_uses_7d"][row] = float(np.mean(np.log1p(counts)))
    return out
