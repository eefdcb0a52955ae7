"""The API docs read offline: /docs (Swagger UI) and /redoc load every asset from the service."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import external_references, page_references
from virtuna.config import load_settings
from virtuna.service import create_app


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_every_asset_from_the_service(page: str, tmp_path: Path) -> None:
    import asyncio

    app = create_app(load_settings(), db_path=tmp_path / "store.duckdb")

    async def fetch() -> tuple[httpx.Response, dict[str, int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get(page)
            assets = page_references(response.text)
            answers = {asset: (await client.get(asset)).status_code for asset in assets}
            return response, answers

    response, answers = asyncio.run(fetch())
    assert response.status_code == 200
    assert external_references(response.text) == []
    assert any(asset.endswith(".js") for asset in answers), answers  # the viewer itself
    assert answers and all(code == 200 for code in answers.values()), answers
