"""The FastAPI application: routers per concern, JSON errors with a message, health check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from virtuna import __version__
from virtuna.config import Settings, get_settings
from virtuna.ingest.apify import ApifyClient, client_from_settings
from virtuna.service import webhooks
from virtuna.store import connect
from virtuna.store.schema import applied_version

ApifyClientFactory = Callable[[], ApifyClient | None]


def create_app(
    settings: Settings | None = None,
    *,
    db_path: Path | str | None = None,
    apify_client_factory: ApifyClientFactory | None = None,
) -> FastAPI:
    """A configured app; tests pass their own store path and Apify client factory."""
    settings = settings or get_settings()
    app = FastAPI(title="Virtuna", version=__version__)
    app.state.settings = settings
    app.state.db_path = db_path if db_path is not None else settings.virtuna_db_path
    app.state.apify_client_factory = apify_client_factory or (
        lambda: client_from_settings(settings)
    )

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
    return app
