"""Who is calling: a user's Bearer API key, or the admin's Bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from virtuna.store import connect
from virtuna.store.users import User, user_for_key

# RFC 6750: a 401 names the scheme; a wrong token also says invalid_token.
WWW_AUTHENTICATE = 'Bearer realm="virtuna"'
INVALID_TOKEN = {"WWW-Authenticate": f'{WWW_AUTHENTICATE}, error="invalid_token"'}


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_user(request: Request, authorization: str | None = Header(None)) -> User:
    """The user whose API key is the Bearer token; 401 without a valid one."""
    key = bearer(authorization)
    if key is None:
        raise HTTPException(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )
    with connect(request.app.state.db_path) as con:
        user = user_for_key(con, key)
    if user is None:
        raise HTTPException(401, "invalid API key", headers=INVALID_TOKEN)
    return user


def require_admin(request: Request, authorization: str | None = Header(None)) -> None:
    """401 unless the Bearer token is ADMIN_TOKEN (constant time); 503 when it is not set."""
    expected = request.app.state.settings.admin_token
    if expected is None or not expected.get_secret_value():
        raise HTTPException(503, "ADMIN_TOKEN is not configured; admin routes are refused")
    token = bearer(authorization) or ""
    if not hmac.compare_digest(token.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        headers = INVALID_TOKEN if token else {"WWW-Authenticate": WWW_AUTHENTICATE}
        raise HTTPException(401, "admin token missing or wrong", headers=headers)


CurrentUser = Annotated[User, Depends(current_user)]
