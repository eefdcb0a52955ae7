"""calculate-trends: trending sounds and hashtags over a window before `as_of`, by POST time.

For each sound (and each hashtag) among videos posted in [as_of - window, as_of):

- recent views come from the newer half of the window, older views from the older half;
- growth = (recent - older) / older; 1.0 when only the newer half has views; 0 when neither;
- velocity = log10(max(total views, 1)) x video count x (1 + max(growth, 0));
- phase, by the original's thresholds: peak when total views >= 500,000 and growth >= -0.2;
  else emerging when growth > 0.5 and velocity < 50; rising when growth > 0.3 and velocity
  >= 50; peak when -0.1 <= growth <= 0.3 and velocity >= 100; declining otherwise.

A sound is keyed by its id; when a source has no sound ids (the 2025 CSV), by its lowercased
title, except creators' own "original sound" audio, which shares one label across thousands of
different sounds and so cannot be identified without an id. Each run writes one snapshot per
(as_of, window_hours), replacing an earlier run for the same pair, so "the trends as of t" stays
a query (`virtuna.store.trends`); a dry run computes the snapshot and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from virtuna.jobs import writes
from virtuna.log import get_logger, stage
from virtuna.store import connect, mark_changed, one, run, utcnow

log = get_logger(__name__)

_STATS = """
    count(*) AS video_count,
    CAST(sum(coalesce(views, 0)) AS BIGINT) AS total_views,
    CAST(sum(CASE WHEN posted_at >= $mid THEN coalesce(views, 0) ELSE 0 END) AS BIGINT)
        AS recent_views,
    CAST(sum(CASE WHEN posted_at < $mid THEN coalesce(views, 0) ELSE 0 END) AS BIGINT)
        AS older_views,
    min(posted_at) AS first_seen,
    max(posted_at) AS last_seen
"""
_SCORED = """
    SELECT *,
        log10(greatest(total_views, 1)) * video_count * (1 + greatest(growth_rate, 0))
            AS velocity_score
    FROM (
        SELECT *,
            CASE WHEN older_views > 0 THEN (recent_views - older_views) / older_views
                 WHEN recent_views > 0 THEN 1.0 ELSE 0.0 END AS growth_rate
        FROM grouped)
"""
_PHASE = """
    CASE WHEN total_views >= 500000 AND growth_rate >= -0.2 THEN 'peak'
         WHEN growth_rate > 0.5 AND velocity_score < 50 THEN 'emerging'
         WHEN growth_rate > 0.3 AND velocity_score >= 50 THEN 'rising'
         WHEN growth_rate BETWEEN -0.1 AND 0.3 AND velocity_score >= 100 THEN 'peak'
         ELSE 'declining' END
"""
_WINDOW = "posted_at >= $start AND posted_at < $as_of"

SOUNDS_SQL = f"""
INSERT INTO trending_sounds
WITH grouped AS (
    SELECT coalesce(sound_id, lower(trim(sound_name))) AS sound_key,
           arg_max(sound_name, posted_at) AS sound_name,
           {_STATS}
    FROM scraped_videos
    WHERE {_WINDOW}
      AND (sound_id IS NOT NULL
           OR (nullif(trim(sound_name), '') IS NOT NULL AND NOT coalesce(sound_original, FALSE)))
    GROUP BY 1),
scored AS ({_SCORED})
SELECT $as_of, $window_hours, sound_key, coalesce(sound_name, sound_key), video_count,
       total_views, recent_views, older_views, round(growth_rate, 4), round(velocity_score, 4),
       {_PHASE}, first_seen, last_seen, $now
FROM scored
"""

HASHTAGS_SQL = f"""
INSERT INTO trending_hashtags
WITH tagged AS (
    SELECT unnest(hashtags) AS hashtag, views, posted_at
    FROM scraped_videos WHERE {_WINDOW}),
grouped AS (SELECT hashtag, {_STATS} FROM tagged GROUP BY 1),
scored AS ({_SCORED}),
total AS (SELECT count(*) AS n FROM scraped_videos WHERE {_WINDOW})
SELECT $as_of, $window_hours, hashtag, video_count, total_views, recent_views, older_views,
       round(growth_rate, 4), round(velocity_score, 4), {_PHASE},
       video_count / greatest(total.n, 1), first_seen, last_seen, $now
FROM scored, total
"""


@dataclass(frozen=True)
class TrendRun:
    """What one calculate-trends run computed (and stored, unless it was a dry run)."""

    as_of: datetime
    window_hours: int
    videos_in_window: int
    sounds: int
    hashtags: int
    # The snapshot's rows, highest velocity first.
    sound_table: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False, repr=False)
    hashtag_table: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False, repr=False)


def newest_post(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest stored video was posted (None for an empty store)."""
    (newest,) = one(con, "SELECT max(posted_at) FROM scraped_videos")
    return newest  # type: ignore[return-value]


def resolve_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime | str | None) -> datetime:
    """None means now; "latest" means the newest post in the store; strings are ISO times."""
    if as_of is None:
        return utcnow()
    if isinstance(as_of, datetime):
        return as_of.replace(tzinfo=None) if as_of.tzinfo is None else _to_naive_utc(as_of)
    if as_of == "latest":
        newest = newest_post(con)
        if newest is None:
            raise ValueError("as_of='latest' needs scraped videos in the store; ingest some first")
        # Just after the newest post, so that post falls inside the window.
        return newest + timedelta(seconds=1)
    return _to_naive_utc(datetime.fromisoformat(as_of))


def _to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return (moment - moment.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]


def write_trend_snapshot(
    con: duckdb.DuckDBPyConnection, as_of: datetime, window_hours: int, *, dry_run: bool = False
) -> TrendRun:
    """Compute and store the sound and hashtag snapshot for (as_of, window_hours); a dry run
    computes it and stores nothing."""
    if window_hours <= 0:
        raise ValueError(f"window_hours must be positive, got {window_hours}")
    start = as_of - timedelta(hours=window_hours)
    params = {
        "as_of": as_of,
        "start": start,
        "mid": start + timedelta(hours=window_hours / 2),
        "window_hours": window_hours,
        "now": utcnow(),
    }
    snapshot = {"as_of": as_of, "w": window_hours}
    with writes(con, dry_run=dry_run):
        for table in ("trending_sounds", "trending_hashtags"):
            run(con, f"DELETE FROM {table} WHERE as_of = $as_of AND window_hours = $w", snapshot)
        run(con, SOUNDS_SQL, params)
        run(con, HASHTAGS_SQL, params)
        (videos,) = one(
            con,
            f"SELECT count(*) FROM scraped_videos WHERE {_WINDOW}",
            {"as_of": as_of, "start": start},
        )
        sounds = con.execute(
            "SELECT * FROM trending_sounds WHERE as_of = $as_of AND window_hours = $w "
            "ORDER BY velocity_score DESC, sound_key",
            snapshot,
        ).df()
        hashtags = con.execute(
            "SELECT * FROM trending_hashtags WHERE as_of = $as_of AND window_hours = $w "
            "ORDER BY velocity_score DESC, hashtag",
            snapshot,
        ).df()
    if not dry_run:
        mark_changed(con)
    count = int(videos)  # type: ignore[call-overload]
    return TrendRun(as_of, window_hours, count, len(sounds), len(hashtags), sounds, hashtags)


HISTORY_COLUMNS = ["kind", "key", "name", "as_of", "velocity_score"]
_KINDS = (  # kind, the TrendRun table, its key and its name columns
    ("sound", "sound_table", "sound_key", "sound_name"),
    ("hashtag", "hashtag_table", "hashtag", "hashtag"),
)


def trend_history(
    con: duckdb.DuckDBPyConnection, as_of: datetime, window_hours: int, windows: int, top: int = 6
) -> pd.DataFrame:
    """The velocity of the `top` sounds and hashtags of the window ending at as_of in each of
    the `windows` consecutive windows ending there (oldest first; 0 where one was not used),
    computed as the job computes a snapshot and not stored: kind, key, name, as_of (the
    window's end), velocity_score."""
    ends = [as_of - timedelta(hours=window_hours * step) for step in reversed(range(windows))]
    snaps = [write_trend_snapshot(con, end, window_hours, dry_run=True) for end in ends]
    rows = []
    for kind, table, key, name in _KINDS:
        leaders = getattr(snaps[-1], table).head(top)
        names = dict(zip(leaders[key], leaders[name], strict=True))
        for end, snap in zip(ends, snaps, strict=True):
            velocity = getattr(snap, table).set_index(key)["velocity_score"]
            for leader, shown in names.items():
                rows.append(
                    {
                        "kind": kind,
                        "key": leader,
                        "name": shown if kind == "sound" else f"#{shown}",
                        "as_of": end,
                        "velocity_score": float(velocity.get(leader, 0.0)),
                    }
                )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def calculate_trends(
    as_of: datetime | str | None = None,
    window_hours: int = 48,
    *,
    db_path: str | None = None,
    dry_run: bool = False,
) -> TrendRun:
    """The calculate-trends job: one trend snapshot as of `as_of` (default now), stored unless
    this is a dry run."""
    with stage("calculate-trends", window_hours=window_hours) as current, connect(db_path) as con:
        moment = resolve_as_of(con, as_of)
        result = write_trend_snapshot(con, moment, window_hours, dry_run=dry_run)
        current.fields.update(
            as_of=moment.isoformat(), videos=result.videos_in_window, sounds=result.sounds
        )
    if result.videos_in_window == 0:
        log.warning(
            "no videos posted in the trend window",
            as_of=moment.isoformat(),
            window_hours=window_hours,
            hint="pass as_of='latest' to compute trends at the newest scraped post",
        )
    return result
