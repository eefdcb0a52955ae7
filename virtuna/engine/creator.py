"""Creator context: who is posting, how their earlier posts did, and the platform's averages.

Everything is read as of a moment (the planned post time, or the post time in a backtest):
only posts published before it count. The context informs the behavioural prompt and the tier
model; it is not a scored signal of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb
import numpy as np

from virtuna.ml.history import earlier_posts, engagement_rates, epoch_us, moment_of
from virtuna.store.connection import run
from virtuna.store.online import KeyReader, StoreReader

RECENT_POSTS = 30
# Used only when the store has no videos with views; same units as measured values.
FALLBACK_PLATFORM = {
    "avg_views": 50_000.0,
    "median_views": 10_000.0,
    "engagement_rate": 0.06,
    "share_rate": 0.008,
    "comment_rate": 0.005,
}


@dataclass(frozen=True)
class CreatorContext:
    """What the store knows about a creator before `as_of`."""

    handle: str | None
    found: bool
    followers: int | None = None
    hearts: int | None = None
    videos: int | None = None
    verified: bool | None = None
    earlier_posts: int = 0
    median_views: float | None = None
    engagement_rate: float | None = None  # median (likes + comments + shares) / views
    last_post_at: datetime | None = None
    platform: dict[str, float] | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain values for results and storage."""
        return asdict(self)

    def describe(self) -> str:
        """The "## Creator Context" block the behavioural prompt quotes."""
        platform = self.platform or FALLBACK_PLATFORM
        lines = ["## Creator Context"]
        if not self.found:
            lines.append("Creator: unknown (no history in our data).")
        else:
            lines.append(f"Creator: @{self.handle}")
            if self.followers is not None:
                lines.append(f"Followers: {self.followers:,}")
            if self.earlier_posts:
                lines.append(
                    f"Earlier posts in our data: {self.earlier_posts}; median views "
                    f"{self.median_views:,.0f}; median engagement "
                    f"{(self.engagement_rate or 0) * 100:.2f}% of views"
                )
        lines.append(
            f"Platform: median views {platform['median_views']:,.0f}; engagement "
            f"{platform['engagement_rate'] * 100:.2f}%; shares {platform['share_rate'] * 100:.2f}%;"
            f" comments {platform['comment_rate'] * 100:.2f}% of views"
        )
        return "\n".join(lines)


def platform_averages(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, float]:
    """Views and engagement rates over every video posted before `as_of` (fallback if none)."""
    rows = run(
        con,
        "SELECT count(*), avg(views), median(views), "
        "median((likes + coalesce(comments, 0) + coalesce(shares, 0)) / views), "
        "median(coalesce(shares, 0) / views), median(coalesce(comments, 0) / views) "
        "FROM scraped_videos WHERE views > 0 AND likes IS NOT NULL AND posted_at < $t",
        {"t": as_of},
    )
    count, avg_views, median_views, engagement, share, comment = rows[0]
    if not count:
        return dict(FALLBACK_PLATFORM)
    return {
        "avg_views": float(avg_views),  # type: ignore[arg-type]
        "median_views": float(median_views),  # type: ignore[arg-type]
        "engagement_rate": float(engagement),  # type: ignore[arg-type]
        "share_rate": float(share),  # type: ignore[arg-type]
        "comment_rate": float(comment),  # type: ignore[arg-type]
    }


def creator_context(
    con: duckdb.DuckDBPyConnection | None,
    handle: str | None,
    as_of: datetime,
    platform: dict[str, float] | None = None,
    *,
    reader: KeyReader | None = None,
) -> CreatorContext:
    """The creator's profile and last RECENT_POSTS posts before `as_of`, read by key from the
    online tables at `con` (or `reader`, an engine's copy of them), with platform averages
    (computed from `con` unless given)."""
    if platform is None:
        if con is None:
            raise ValueError("platform averages need a store connection")
        platform = platform_averages(con, as_of)
    if not handle:
        return CreatorContext(handle=None, found=False, platform=platform)
    if reader is None:
        if con is None:
            raise ValueError("a creator context needs a store connection or a reader")
        reader = StoreReader(con)
    stored = reader.profiles([handle]).get(handle)
    posts = reader.keyed("creator_posts", [handle]).of(handle)
    recent = (
        {name: v[-RECENT_POSTS:] for name, v in earlier_posts(posts, epoch_us(as_of)).items()}
        if posts is not None
        else {}
    )
    count = len(recent["t"]) if recent else 0
    # The profile's fields, else the latest earlier post's (as displayed when it was scraped).
    fields = {}
    for i, (name, kind) in enumerate(
        (("followers", int), ("hearts", int), ("videos", int), ("verified", bool))
    ):
        value = stored[i] if stored is not None else None
        if value is None and count:
            value = _latest(recent[name])
        fields[name] = None if value is None else kind(value)
    return CreatorContext(
        handle=handle,
        found=stored is not None or count > 0,
        earlier_posts=count,
        median_views=_median(recent["views"]) if count else None,
        engagement_rate=_median(engagement_rates(recent)) if count else None,
        last_post_at=moment_of(recent["t"][-1]) if count else None,
        platform=platform,
        **fields,  # type: ignore[arg-type]
    )


def _latest(values: np.ndarray) -> float | None:
    """The last known value (NaN is unknown)."""
    known = values[~np.isnan(values)]
    return float(known[-1]) if len(known) else None


def _median(values: np.ndarray) -> float | None:
    known = values[~np.isnan(values)]
    return float(np.median(known)) if len(known) else None
