"""Calibration-baseline statistics the LLM prompts quote, computed from the store.

`compute_baseline` measures share, comment, save and weighted-engagement rates (percentiles),
the duration sweet spot and the top differentiators between viral and average videos over the
scraped videos, and `save_baseline` writes them as JSON beside the store (data/ by default).
`load_baseline` reads the file through a pydantic schema; a missing or corrupt file gives a
logged warning and
`FALLBACK_BASELINE`, whose values are in the same units (rates are fractions of views, never
percentages), unlike the original's fallback that mixed 0-100 and 0-1 scales.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from virtuna.log import get_logger

log = get_logger(__name__)

BASELINE_FILE = "calibration-baseline.json"


def baseline_path(db_path: Path | str) -> Path:
    """Where the baseline of a store lives: beside the store file (data/ by default)."""
    return Path(db_path).with_name(BASELINE_FILE)


class Percentiles(BaseModel):
    """A rate's percentiles, as fractions of views (0.02 = 2 %)."""

    p50: float = Field(ge=0)
    p75: float = Field(ge=0)
    p90: float = Field(ge=0)


class Differentiator(BaseModel):
    """How much a measure differs between viral (top decile) and average (p40-p60) videos."""

    name: str
    viral_median: float
    average_median: float
    difference_pct: float


class CalibrationBaseline(BaseModel):
    """What the prompts quote about real TikTok engagement."""

    video_count: int = Field(ge=0)
    share_rate: Percentiles
    comment_rate: Percentiles
    save_rate: Percentiles
    weighted_engagement: Percentiles  # (likes + 2 comments + 3 shares) / views
    duration_sweet_spot: tuple[float, float]  # seconds
    differentiators: list[Differentiator] = Field(default_factory=list)
    generated_at: datetime | None = None
    is_fallback: bool = False
    fallback_fields: list[str] = Field(default_factory=list)  # measures the data could not give


# Documented fallback, used only when no baseline file can be read. Every rate is a fraction
# of views. The original's fallback put weighted engagement on a 0-100 scale (45/65/85) while
# its real file held fractions; the fractions from its real file (p50/p75/p90) are used here.
FALLBACK_BASELINE = CalibrationBaseline(
    video_count=0,
    share_rate=Percentiles(p50=0.005, p75=0.01, p90=0.02),
    comment_rate=Percentiles(p50=0.003, p75=0.006, p90=0.012),
    save_rate=Percentiles(p50=0.002, p75=0.005, p90=0.01),
    weighted_engagement=Percentiles(p50=0.0954, p75=0.1596, p90=0.2397),
    duration_sweet_spot=(15.0, 60.0),
    differentiators=[],
    is_fallback=True,
)


_RATES_SQL = """
WITH v AS (
    SELECT views, duration_seconds, length(coalesce(description, '')) AS caption_length,
           coalesce(shares, 0) / views AS share_rate,
           coalesce(comments, 0) / views AS comment_rate,
           coalesce(likes, 0) / views AS like_rate,
           saves / views AS save_rate,
           (coalesce(likes, 0) + 2 * coalesce(comments, 0) + 3 * coalesce(shares, 0)) / views
               AS weighted
    FROM scraped_videos WHERE views > 0 AND likes IS NOT NULL)
SELECT * FROM v
"""
_DIFFERENTIATORS = (
    "comment_rate",
    "share_rate",
    "like_rate",
    "save_rate",
    "caption_length",
    "duration_seconds",
)
_FIELD_OF = {"weighted": "weighted_engagement"}
SWEET_SPOT_BUCKET_S = 5
SWEET_SPOT_MIN_VIDEOS = 30


def compute_baseline(con: duckdb.DuckDBPyConnection) -> CalibrationBaseline:
    """Measure the baseline over every scraped video with views (ValueError if there are none)."""
    frame = con.sql(_RATES_SQL).df()
    fallback_fields: list[str] = []
    if frame.empty:
        raise ValueError("no scraped videos with views: ingest data before computing a baseline")

    def pct(column: str) -> Percentiles:
        values = frame[column].dropna()
        if values.empty:  # e.g. no source has saves: keep the documented fallback for it
            fallback_fields.append(_FIELD_OF.get(column, column))
            return getattr(FALLBACK_BASELINE, _FIELD_OF.get(column, column))
        q = values.quantile([0.5, 0.75, 0.9])
        return Percentiles(p50=float(q[0.5]), p75=float(q[0.75]), p90=float(q[0.9]))

    timed = frame.dropna(subset=["duration_seconds"])
    timed = timed[timed["duration_seconds"] > 0]
    buckets = (timed["duration_seconds"] // SWEET_SPOT_BUCKET_S * SWEET_SPOT_BUCKET_S).astype(int)
    by_bucket = timed.groupby(buckets)["weighted"].agg(["median", "count"])
    by_bucket = by_bucket[by_bucket["count"] >= SWEET_SPOT_MIN_VIDEOS]
    if by_bucket.empty:
        fallback_fields.append("duration_sweet_spot")
        sweet = FALLBACK_BASELINE.duration_sweet_spot
    else:
        start = float(by_bucket["median"].idxmax())
        sweet = (start, start + SWEET_SPOT_BUCKET_S)

    p40, p60, p90 = frame["weighted"].quantile([0.4, 0.6, 0.9])
    viral = frame[frame["weighted"] >= p90]
    average = frame[(frame["weighted"] >= p40) & (frame["weighted"] <= p60)]
    differentiators = []
    for name in _DIFFERENTIATORS:
        viral_median, average_median = viral[name].median(), average[name].median()
        if pd.isna(viral_median) or pd.isna(average_median) or average_median == 0:
            continue
        differentiators.append(
            Differentiator(
                name=name,
                viral_median=float(viral_median),
                average_median=float(average_median),
                difference_pct=round(
                    float((viral_median - average_median) / average_median * 100), 1
                ),
            )
        )
    differentiators.sort(key=lambda d: abs(d.difference_pct), reverse=True)
    return CalibrationBaseline(
        video_count=len(frame),
        share_rate=pct("share_rate"),
        comment_rate=pct("comment_rate"),
        save_rate=pct("save_rate"),
        weighted_engagement=pct("weighted"),
        duration_sweet_spot=sweet,
        differentiators=differentiators,
        generated_at=datetime.now(UTC).replace(tzinfo=None),
        fallback_fields=fallback_fields,
    )


def load_baseline(path: Path) -> CalibrationBaseline:
    """The stored baseline, or the documented fallback (with a warning) if it cannot be read."""
    try:
        return CalibrationBaseline.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("calibration baseline missing; using fallback values", path=str(path))
    except (ValidationError, ValueError, OSError) as exc:
        log.warning(
            "calibration baseline unreadable; using fallback values",
            path=str(path),
            error=str(exc).splitlines()[0],
        )
    return FALLBACK_BASELINE


def save_baseline(baseline: CalibrationBaseline, path: Path) -> Path:
    """Write the baseline as JSON (the file load_baseline reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(baseline.model_dump_json(indent=2), encoding="utf-8")
    return path
