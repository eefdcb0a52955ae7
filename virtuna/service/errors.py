"""The service's error bodies, as answered and as documented in OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from virtuna.store.users import User, next_utc_midnight


class ErrorBody(BaseModel):
    """Every error the service answers: a message (and, for 422, the fields at fault)."""

    error: str


# Documented for every route that takes a body (OpenAPI `responses`).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Request body over SERVICE_MAX_BODY_BYTES"},
}
LIMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Daily limit reached (resets at UTC midnight)"},
}


def limit_response(user: User, limit: int, what: str = "daily limit reached") -> JSONResponse:
    """The 429 for a user who used up today's allowance."""
    return JSONResponse(
        {
            "error": what,
            "limit": limit,
            "tier": user.tier,
            "resets_at": next_utc_midnight().isoformat() + "Z",
        },
        status_code=429,
    )
