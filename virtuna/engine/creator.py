"""Creator context: who is posting, how their earlier posts did, and the platform's averages.

Everything is read as of a moment (the planned post time, or the post time in a backtest):
only posts published before it count. The context informs the behavioural prompt and the tier
model; it is not a scored signal of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb

from virtuna.store.connection import run
from virtuna.store.online import creator_posts

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
    con: duckdb.DuckDBPyConnection,
    handle: str | None,
    as_of: datetime,
    platform: dict[str, float] | None = None,
) -> CreatorContext:
    """The creator's profile and earlier posts as of `as_of` (read by key from the online
    tables), with platform averages (computed here unless given)."""
    platform = platform if platform is not None else platform_averages(con, as_of)
    if not handle:
        return CreatorContext(handle=None, found=False, platform=platform)
    profile = run(
        con,
        "SELECT followers, hearts, videos, verified FROM creators WHERE handle = ?",
        [handle],
    )
    history = run(
        con,
        # Materialized first: a top-N over the look-up would stop DuckDB using the key's index.
        f"WITH posts AS MATERIALIZED (SELECT * FROM ({creator_posts('online', '$h')}) "
        "WHERE posted_at < $t), "
        "earlier AS (SELECT * FROM posts ORDER BY posted_at DESC, video_id DESC LIMIT $n) "
        "SELECT count(*), median(views), "
        "median((likes + coalesce(comments, 0) + coalesce(shares, 0)) / nullif(views, 0)), "
        "max(posted_at), arg_max(followers, posted_at), arg_max(hearts, posted_at), "
        "arg_max(videos, posted_at), arg_max(verified, posted_at) FROM earlier",
        {"h": handle, "t": as_of, "n": RECENT_POSTS},
    )
    count, median_views, engagement, last_post, fans, hearts, videos, verified = history[0]
    followers_p, hearts_p, videos_p, verified_p = profile[0] if profile else (None,) * 4
    found = bool(profile) or bool(count)
    return CreatorContext(
        handle=handle,
        found=found,
        followers=followers_p if followers_p is not None else fans,  # type: ignore[arg-type]
        hearts=hearts_p if hearts_p is not None else hearts,  # type: ignore[arg-type]
        videos=videos_p if videos_p is not None else videos,  # type: ignore[arg-type]
        verified=verified_p if verified_p is not None else verified,  # type: ignore[arg-type]
        earlier_posts=int(count),  # type: ignore[arg-type]
        median_views=float(median_views) if median_views is not None else None,  # type: ignore[arg-type]
        engagement_rate=float(engagement) if engagement is not None else None,  # type: ignore[arg-type]
        last_post_at=last_post,  # type: ignore[arg-type]
        platform=platform,
    )
