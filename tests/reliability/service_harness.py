"""The service on a temp store with its engine wired to fake LLMs, and concurrent requests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from tests.fakes.llm import FakeDeepSeek, FakeGemini, llm_settings
from virtuna.config import Settings
from virtuna.engine.baseline import FALLBACK_BASELINE
from virtuna.engine.llm import Providers
from virtuna.engine.pipeline import Engine
from virtuna.service import create_app
from virtuna.store import connect, run
from virtuna.store.users import create_user

DRAFT = {"content_text": "POV: the one editing trick nobody tells you #fyp #editing"}
ADMIN_TOKEN = "admin-reliability-8d2e"


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Harness:
    """An app on a temp store, its settings and engine."""

    app: FastAPI
    db_path: Path
    settings: Settings
    engine: Engine | None

    def user(self, name: str, tier: str = "free") -> tuple[str, str]:
        """A new user: (user_id, API key)."""
        with connect(self.db_path) as con:
            return create_user(con, name, tier)

    def rows(self, sql: str, params: object = None) -> list[tuple[object, ...]]:
        """Rows from the store."""
        with connect(self.db_path) as con:
            return run(con, sql, params)

    def send(self, requests: Sequence[dict[str, Any]]) -> list[httpx.Response]:
        """Send every request at once (one event loop, the app's threads) and wait for all."""

        async def main() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app)
            try:
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://api", timeout=None
                ) as client:
                    return list(await asyncio.gather(*(client.request(**r) for r in requests)))
            finally:
                if self.engine is not None:
                    await self.engine.aclose()

        return asyncio.run(main())


def harness(
    tmp_path: Path,
    gemini: FakeGemini | None = None,
    deepseek: FakeDeepSeek | None = None,
    *,
    engine: Any = None,
    tier_signal: Any = None,
    **overrides: Any,
) -> Harness:
    """The app with an engine on the fakes (providers not given are not configured)."""
    db_path = tmp_path / "service.duckdb"
    overrides.setdefault("admin_token", ADMIN_TOKEN)
    settings = llm_settings(gemini, deepseek, virtuna_db_path=str(db_path), **overrides)
    if engine is None:
        engine = Engine(
            settings,
            db_path=db_path,
            providers=Providers.from_settings(settings, sleep=_no_sleep),
            baseline=FALLBACK_BASELINE,
            **({"tier_signal": tier_signal} if tier_signal is not None else {}),
        )
    app = create_app(settings, db_path=db_path, engine=engine, job_runner=lambda *a, **k: None)
    return Harness(app, db_path, settings, engine if isinstance(engine, Engine) else None)


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for key."""
    return {"Authorization": f"Bearer {key}"}
