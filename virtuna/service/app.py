"""The FastAPI application: routers per concern, JSON errors with a message, health check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sentry_sdk
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from virtuna import __version__
from virtuna.config import Settings, get_settings
from virtuna.engine.pipeline import Engine
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.jobs.schedule import Schedule
from virtuna.log import bind_request, get_logger
from virtuna.service import admin, analyze, outcomes, webhooks
from virtuna.service.auth import WWW_AUTHENTICATE
from virtuna.store import connect
from virtuna.store.schema import applied_version

ApifyClientFactory = Callable[[], ApifyClient | None]
REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close the engine the app created when the server stops."""
    yield
    if getattr(app.state, "engine", None) is not None and not app.state.engine_injected:
        await app.state.engine.aclose()


def too_large(max_bytes: int) -> str:
    """The 413 message."""
    return f"request body too large: at most {max_bytes} bytes (SERVICE_MAX_BODY_BYTES)"


class BodyLimit:
    """A JSON 413 for a request body over max_bytes, before anything is parsed or stored.

    A declared Content-Length over the cap is refused unread; otherwise the bytes are counted
    as they arrive, so a chunked body without a length does not get around it. (Starlette's
    own limiter answers in plain text, and every error here is JSON.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap app."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or count the body, then run the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"error": too_large(self.max_bytes)}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # answered as JSON by the HTTPException handler
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _internal_error(exc: Exception) -> JSONResponse:
    """The JSON 500 for an unexpected error: reported to Sentry and logged, details kept inside."""
    sentry_sdk.capture_exception(exc)
    log.error("unhandled error", error=f"{type(exc).__name__}: {exc}")
    return JSONResponse({"error": "internal server error"}, status_code=500)


def create_app(
    settings: Settings | None = None,
    *,
    db_path: Path | str | None = None,
    apify_client_factory: ApifyClientFactory | None = None,
    engine: Engine | None = None,
    job_runner: Callable[..., Any] | None = None,
    schedule: Schedule | None = None,
) -> FastAPI:
    """A configured app; tests pass their own store, Apify client, engine and job runner."""
    settings = settings or get_settings()
    # /docs and /redoc serve Swagger UI and ReDoc from the package, not from a CDN.
    app = FastAPIOffline(title="Virtuna", version=__version__, lifespan=lifespan)
    # Added before the request-id middleware, so it runs inside it (413s carry the id too).
    app.add_middleware(BodyLimit, max_bytes=settings.service_max_body_bytes)
    app.state.engine = engine  # created on first analysis when None
    app.state.engine_injected = engine is not None
    app.state.job_runner = job_runner  # run_job when None
    app.state.schedule = schedule  # schedules/jobs.yaml when None
    app.state.settings = settings
    app.state.db_path = db_path if db_path is not None else settings.virtuna_db_path
    app.state.apify_client_factory = apify_client_factory or (
        lambda: client_from_settings(settings)
    )

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = (request.headers.get(REQUEST_ID_HEADER) or "").strip()[:MAX_REQUEST_ID]
        with bind_request(given or None) as bound:
            request.state.request_id = str(bound)
            try:
                response = await call_next(request)
            # Answered here rather than by Starlette's outermost error middleware, which
            # re-raises after its 500 and so makes the server drop a keep-alive connection.
            except Exception as exc:
                response = _internal_error(exc)
        response.headers[REQUEST_ID_HEADER] = str(bound)
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        return _internal_error(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        detail = exc.detail
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        elif exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
        elif exc.status_code == 413:
            detail = too_large(settings.service_max_body_bytes)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "fields": fields}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        """Liveness and the store's schema version."""
        with connect(app.state.db_path) as con:
            version = applied_version(con)
        return {"status": "ok", "version": __version__, "schema_version": version}

    app.include_router(webhooks.router)
    app.include_router(analyze.router)
    app.include_router(outcomes.router)
    app.include_router(admin.router)
    return app
