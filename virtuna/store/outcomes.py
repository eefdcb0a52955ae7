"""outcomes: what a post actually did, one per analysis, owned by the analysis's user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import duckdb
import pandas as pd
from pydantic import BaseModel, Field, HttpUrl

from virtuna.store.connection import run, utcnow

RESONATES_FROM_TIER = 4  # the absolute tiers that count as resonating (virtuna.ml.tiers)
# Whether an outcome `o` resonated, as queries read it: recorded, else (outcomes of analyses
# stored before resonance thresholds) absolute tier 4 or 5; NULL when neither is known.
RESONATED_SQL = (
    "coalesce(o.resonated, "
    f"CASE WHEN o.actual_tier > 0 THEN o.actual_tier >= {RESONATES_FROM_TIER} END)"
)


class OutcomeConflictError(ValueError):
    """The analysis already has an outcome."""


class AnalysisNotFoundError(LookupError):
    """No such analysis for this user (unknown, deleted, or someone else's)."""


# Far above any real post (the most viewed have a few billion views), far below BIGINT's 2^63-1,
# and exact as a JSON number, so OpenAPI documents it without rounding.
MAX_COUNT = 10**12
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class OutcomeReport(BaseModel):
    """A reported outcome (the body the service's POST /api/outcomes accepts)."""

    analysis_id: str = Field(min_length=1, max_length=64)
    actual_views: Count | None = None
    actual_likes: Count | None = None
    actual_shares: Count | None = None
    actual_comments: Count | None = None
    actual_engagement_rate: Percent | None = None
    actual_score: Percent | None = None
    platform: str = Field(
        "tiktok",
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9_]+$",
        description="Lower-case platform name (tiktok, instagram, youtube ...).",
    )
    platform_post_url: HttpUrl | None = None


@dataclass(frozen=True)
class Derived:
    """What the store derives from the views when the reporter did not say."""

    actual_score: float | None
    actual_tier: int | None


def record_outcome(
    con: duckdb.DuckDBPyConnection,
    report: OutcomeReport,
    *,
    user_id: str | None,
    derived: Derived,
    source: str = "user",
    reported_at: datetime | None = None,
) -> dict[str, object]:
    """Store an outcome for an analysis the user owns; returns the stored row."""
    rows = run(
        con,
        "SELECT overall_score, user_id, resonates_at_views FROM analysis_results "
        "WHERE id = ? AND deleted_at IS NULL",
        [report.analysis_id],
    )
    if not rows or (user_id is not None and rows[0][1] != user_id):
        raise AnalysisNotFoundError(f"no analysis {report.analysis_id} for this user")
    predicted = float(rows[0][0])  # type: ignore[arg-type]
    if run(con, "SELECT 1 FROM outcomes WHERE analysis_id = ?", [report.analysis_id]):
        raise OutcomeConflictError(f"analysis {report.analysis_id} already has an outcome")
    actual = report.actual_score if report.actual_score is not None else derived.actual_score
    now = utcnow()
    row = {
        "id": str(uuid.uuid4()),
        "analysis_id": report.analysis_id,
        "user_id": user_id,
        "actual_views": report.actual_views,
        "actual_likes": report.actual_likes,
        "actual_shares": report.actual_shares,
        "actual_comments": report.actual_comments,
        "actual_engagement_rate": report.actual_engagement_rate,
        "actual_score": actual,
        "actual_tier": derived.actual_tier,
        "resonated": resonated(report.actual_views, rows[0][2], derived.actual_tier),  # type: ignore[arg-type]
        "predicted_score": predicted,
        "delta": None if actual is None else round(actual - predicted, 2),
        "platform": report.platform,
        "platform_post_url": str(report.platform_post_url) if report.platform_post_url else None,
        "source": source,
        "reported_at": reported_at or now,
        "created_at": now,
    }
    columns = ", ".join(row)
    try:
        run(
            con,
            f"INSERT INTO outcomes ({columns}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()),
        )
    # A concurrent report for the same analysis got in first: the unique analysis_id refuses
    # this one (as a duplicate key, or as a conflict at commit).
    except (duckdb.ConstraintException, duckdb.TransactionException) as exc:
        raise OutcomeConflictError(f"analysis {report.analysis_id} already has an outcome") from exc
    return row


def resonated(views: float | None, threshold: float | None, tier: int | None) -> bool | None:
    """Whether a post reached its analysis's target: views >= the analysis's resonance
    threshold; for analyses stored before thresholds existed, absolute tier 4 or 5."""
    if views is not None and threshold is not None:
        return bool(views >= threshold)
    if tier is not None and tier > 0:
        return tier >= RESONATES_FROM_TIER
    return None


def outcome_frame(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Reported posts with what was served: analysis_id, signal_profile ('unprofiled' for
    analyses older than profiles), raw and overall score, resonated (None when unknown), actual
    score, source and reported_at, oldest first."""
    return con.execute(
        "SELECT a.id AS analysis_id, coalesce(a.signal_profile, 'unprofiled') AS signal_profile, "
        "coalesce(a.raw_score, a.overall_score) AS raw_score, a.overall_score, "
        f"{RESONATED_SQL} AS resonated, o.actual_score, o.source, o.reported_at "
        "FROM outcomes o JOIN analysis_results a ON a.id = o.analysis_id "
        "WHERE o.deleted_at IS NULL AND a.deleted_at IS NULL "
        "AND ($since IS NULL OR o.reported_at >= $since) "
        "AND ($until IS NULL OR o.reported_at < $until) ORDER BY o.reported_at, a.id",
        {"since": since, "until": until},
    ).df()
