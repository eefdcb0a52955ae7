"""The HTTP face of Virtuna (FastAPI): `virtuna serve` runs `create_app()` under uvicorn."""

from virtuna.service.app import create_app

__all__ = ["create_app"]
