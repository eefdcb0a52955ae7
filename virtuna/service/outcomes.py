"""Outcomes: POST /api/outcomes (report what a post did), GET /api/outcomes (the caller's,
paged), and PATCH /api/analyses/{id} (link an analysis to the video it became)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from virtuna.outcomes.linking import (
    MAX_URL_LENGTH,
    LinkConflictError,
    LinkError,
    link_analysis,
)
from virtuna.service.auth import CurrentUser
from virtuna.service.errors import BODY_ERRORS, ErrorBody
from virtuna.store import connect, run
from virtuna.store.outcomes import (
    AnalysisNotFoundError,
    Derived,
    OutcomeConflictError,
    OutcomeReport,
    record_outcome,
)

router = APIRouter()

# Upper edges of tiers 1-4 on the 0-100 score (0-25, 25-45, 45-65, 65-80, 80-100).
TIER_EDGES = (25.0, 45.0, 65.0, 80.0)
COLUMNS = (
    "id, analysis_id, user_id, actual_views, actual_likes, actual_shares, actual_comments, "
    "actual_engagement_rate, actual_score, actual_tier, predicted_score, delta, platform, "
    "platform_post_url, source, reported_at, created_at"
)


def tier_of_score(score: float | None) -> int | None:
    """The tier (1-5) a 0-100 actual score falls in; None without a score."""
    if score is None:
        return None
    return 1 + sum(score >= edge for edge in TIER_EDGES)


def derive_outcome(report: OutcomeReport) -> Derived:
    """What the store derives for a report (the tier of a reported score), wherever it came from."""
    return Derived(actual_score=None, actual_tier=tier_of_score(report.actual_score))


def encode_cursor(reported_at: datetime, outcome_id: str) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = f"{reported_at.isoformat()}|{outcome_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(reported_at, id) of a cursor; 400 when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
        stamp, _, outcome_id = text.partition("|")
        if not outcome_id:
            raise ValueError("no id")
        return datetime.fromisoformat(stamp), outcome_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise HTTPException(400, "invalid cursor") from exc


@router.post(
    "/api/outcomes",
    status_code=201,
    responses={
        **BODY_ERRORS,
        404: {"model": ErrorBody, "description": "No such analysis of the caller's"},
        409: {"model": ErrorBody, "description": "The analysis already has an outcome"},
    },
)
def report_outcome(report: OutcomeReport, request: Request, user: CurrentUser) -> dict[str, Any]:
    """Store the outcome of one of the caller's analyses."""
    derived = derive_outcome(report)
    try:
        with connect(request.app.state.db_path) as con:
            return record_outcome(con, report, user_id=user.id, derived=derived)
    except AnalysisNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except OutcomeConflictError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/api/outcomes")
def list_outcomes(
    request: Request,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """The caller's outcomes, newest first, paged by (reported_at, id)."""
    after = decode_cursor(cursor) if cursor else None
    sql = f"SELECT {COLUMNS} FROM outcomes WHERE user_id = ? AND deleted_at IS NULL"
    params: list[object] = [user.id]
    if after is not None:
        sql += " AND (reported_at < ? OR (reported_at = ? AND id < ?))"
        params += [after[0], after[0], after[1]]
    sql += " ORDER BY reported_at DESC, id DESC LIMIT ?"
    params.append(limit + 1)
    with connect(request.app.state.db_path) as con:
        rows = run(con, sql, params)
    names = [c.strip() for c in COLUMNS.split(",")]
    data = [dict(zip(names, row, strict=True)) for row in rows[:limit]]
    has_more = len(rows) > limit
    next_cursor = (
        encode_cursor(data[-1]["reported_at"], str(data[-1]["id"]))  # type: ignore[arg-type]
        if has_more
        else None
    )
    return {"data": data, "next_cursor": next_cursor, "has_more": has_more}


class AnalysisLink(BaseModel):
    """The body of PATCH /api/analyses/{id}: the posted video's URL."""

    model_config = ConfigDict(extra="forbid")

    posted_url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="The TikTok video the draft became: https://www.tiktok.com/@handle/video/<id>",
    )


@router.patch(
    "/api/analyses/{analysis_id}",
    response_model=None,
    responses={
        **BODY_ERRORS,
        404: {"model": ErrorBody, "description": "No such analysis of the caller's"},
        409: {"model": ErrorBody, "description": "The analysis is linked to another video"},
    },
)
def link_posted_video(
    analysis_id: Annotated[str, Path(min_length=1, max_length=64)],
    link: AnalysisLink,
    request: Request,
    user: CurrentUser,
) -> dict[str, Any] | JSONResponse:
    """Link one of the caller's analyses to the TikTok video it became (never fetched)."""
    try:
        with connect(request.app.state.db_path) as con:
            return link_analysis(con, analysis_id, user.id, link.posted_url)
    except LinkError as exc:
        return JSONResponse(
            {"error": "invalid request", "fields": [{"field": "posted_url", "message": str(exc)}]},
            status_code=422,
        )
    except AnalysisNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except LinkConflictError as exc:
        raise HTTPException(409, str(exc)) from exc
