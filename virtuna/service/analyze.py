"""POST /api/analyze: one prediction for the caller, as JSON or as Server-Sent Events.

Daily limits per tier (free 5, starter 50, pro unlimited) are enforced by reserving the slot
before the analysis, in one atomic statement, so concurrent requests can never take more
slots than the limit; an analysis that fails gives its slot back. The body is validated
before anything is reserved, so invalid input never uses up the allowance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from virtuna.engine.pipeline import Engine
from virtuna.engine.schema import AnalysisInput, PredictionResult
from virtuna.log import get_logger
from virtuna.service.auth import CurrentUser
from virtuna.service.errors import BODY_ERRORS, LIMIT_ERRORS, limit_response
from virtuna.store import connect
from virtuna.store.users import User, release_analysis, reserve_analysis

router = APIRouter()
log = get_logger(__name__)

DAILY_LIMITS: dict[str, int | None] = {"free": 5, "starter": 50, "pro": None}


def get_engine(request: Request) -> Engine:
    """The app's one engine, created on first use."""
    state = request.app.state
    if getattr(state, "engine", None) is None:
        state.engine = Engine(state.settings, db_path=state.db_path)
    return state.engine  # type: ignore[no-any-return]


def _reserve(request: Request, user: User) -> date | None:
    with connect(request.app.state.db_path) as con:
        return reserve_analysis(con, user.id, limit=DAILY_LIMITS.get(user.tier))


def _release(request: Request, user: User, day: date) -> None:
    with connect(request.app.state.db_path) as con:
        release_analysis(con, user.id, day)


async def _analyze(
    request: Request, user: User, data: AnalysisInput, day: date
) -> PredictionResult:
    """Run the engine for the user; the reserved slot is given back if it fails."""
    engine = get_engine(request)
    try:
        result = await engine.analyze(
            data,
            user_id=user.id,
            request_id=getattr(request.state, "request_id", None),
            store=True,
        )
    except BaseException:  # cancelled requests too: the slot was not used
        await asyncio.shield(asyncio.to_thread(_release, request, user, day))
        raise
    # A 200 means stored: the client can read the analysis back at once. When another process
    # holds the store past the lock timeout, the writer keeps it and stores it later.
    timeout = request.app.state.settings.virtuna_db_lock_timeout_s
    try:
        committed = await engine.stored(result.analysis_id, timeout)
    except Exception as exc:
        result.warnings.append(f"Store result unavailable: {type(exc).__name__}: {exc}")
    else:
        if not committed:
            result.warnings.append("The store is busy: this analysis will be stored shortly")
    return result


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@router.post("/api/analyze", response_model=None, responses={**BODY_ERRORS, **LIMIT_ERRORS})
async def analyze(
    request: Request,
    data: AnalysisInput,
    user: CurrentUser,
) -> Response | dict[str, Any]:
    """Analyse a draft; SSE when the client accepts text/event-stream."""
    day = await asyncio.to_thread(_reserve, request, user)
    if day is None:
        return limit_response(user, DAILY_LIMITS[user.tier] or 0)
    if "text/event-stream" in request.headers.get("accept", ""):

        async def events() -> AsyncIterator[str]:
            try:
                yield _sse("phase", {"phase": "analyzing"})
            except BaseException:  # the client left before the analysis started
                await asyncio.shield(asyncio.to_thread(_release, request, user, day))
                raise
            try:
                result = await _analyze(request, user, data, day)
            except Exception as exc:  # reported to the client as an event, logged here
                log.error("analysis failed", error=str(exc))
                yield _sse("error", {"error": f"analysis failed: {type(exc).__name__}"})
                return
            yield _sse("complete", result.model_dump(mode="json"))

        return StreamingResponse(events(), media_type="text/event-stream")
    result = await _analyze(request, user, data, day)
    return result.model_dump(mode="json")
