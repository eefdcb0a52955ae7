"""The FastAPI application: routers per concern, JSON errors with a message, health check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from virtuna import __version__
from virtuna.config import Settings, get_settings
from virtuna.engine.pipeline import Engine
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.jobs.schedule import Schedule
from virtuna.log import bind_request, get_logger
from virtuna.service import admin, analyze, outcomes, webhooks
from virtuna.store import connect
from virtuna.store.schema import applied_version

ApifyClientFactory = Callable[[], ApifyClient | None]
REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close the engine the app created when the server stops."""
    yield
    if getattr(app.state, "engine", None) is not None and not app.state.engine_injected:
        await app.state.engine.aclose()


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
    app = FastAPI(title="Virtuna", version=__version__, lifespan=lifespan)
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
            response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = str(bound)
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", error=f"{type(exc).__name__}: {exc}")
        return JSONResponse({"error": "internal server error"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

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
