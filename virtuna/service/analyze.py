"""POST /api/analyze: one prediction for the caller, as JSON or as Server-Sent Events.

Daily limits per tier (free 5, starter 50, pro unlimited) are checked before the analysis and
the counter moves only after a successful one, so invalid input never uses up the allowance.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from virtuna.engine.pipeline import Engine
from virtuna.engine.schema import PredictionResult
from virtuna.log import get_logger
from virtuna.service.auth import CurrentUser
from virtuna.store import connect
from virtuna.store.users import User, get_usage, increment_usage, next_utc_midnight

router = APIRouter()
log = get_logger(__name__)

DAILY_LIMITS: dict[str, int | None] = {"free": 5, "starter": 50, "pro": None}


def get_engine(request: Request) -> Engine:
    """The app's one engine, created on first use."""
    state = request.app.state
    if getattr(state, "engine", None) is None:
        state.engine = Engine(state.settings, db_path=state.db_path)
    return state.engine  # type: ignore[no-any-return]


def validation_fields(exc: ValidationError) -> list[dict[str, str]]:
    """A pydantic error as the service's field list."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "input", "message": e["msg"]}
        for e in exc.errors()
    ]


def _limit_response(user: User, limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": "daily limit reached",
            "limit": limit,
            "tier": user.tier,
            "resets_at": next_utc_midnight().isoformat() + "Z",
        },
        status_code=429,
    )


def _check_limit(request: Request, user: User) -> JSONResponse | None:
    limit = DAILY_LIMITS.get(user.tier)
    if limit is None:
        return None
    with connect(request.app.state.db_path) as con:
        used = get_usage(con, user.id)
    return _limit_response(user, limit) if used >= limit else None


async def _analyze(request: Request, user: User, data: dict[str, Any]) -> PredictionResult:
    """Run the engine for the user, then count the analysis."""
    result = await get_engine(request).analyze(
        data, user_id=user.id, request_id=getattr(request.state, "request_id", None), store=True
    )
    with connect(request.app.state.db_path) as con:
        increment_usage(con, user.id)
    return result


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@router.post("/api/analyze", response_model=None)
async def analyze(
    request: Request,
    data: Annotated[dict[str, Any], Body()],
    user: CurrentUser,
) -> Response | dict[str, Any]:
    """Analyse a draft; SSE when the client accepts text/event-stream."""
    limited = _check_limit(request, user)
    if limited is not None:
        return limited
    if "text/event-stream" in request.headers.get("accept", ""):

        async def events() -> AsyncIterator[str]:
            yield _sse("phase", {"phase": "analyzing"})
            try:
                result = await _analyze(request, user, data)
            except ValidationError as exc:
                yield _sse("error", {"error": "invalid request", "fields": validation_fields(exc)})
                return
            except Exception as exc:  # reported to the client as an event, logged here
                log.error("analysis failed", error=str(exc))
                yield _sse("error", {"error": f"analysis failed: {type(exc).__name__}"})
                return
            yield _sse("complete", result.model_dump(mode="json"))

        return StreamingResponse(events(), media_type="text/event-stream")
    try:
        result = await _analyze(request, user, data)
    except ValidationError as exc:
        return JSONResponse(
            {"error": "invalid request", "fields": validation_fields(exc)}, status_code=422
        )
    return result.model_dump(mode="json")
