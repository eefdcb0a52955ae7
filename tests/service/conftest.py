"""A real service on 127.0.0.1 (uvicorn in a thread) wired to a fake Apify and a temp store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.fakes.apify import FakeApify
from virtuna.config import Settings, load_settings
from virtuna.ingest.apify import ApifyClient
from virtuna.service import create_app
from virtuna.store import connect

WEBHOOK_SECRET = "whsec-test-5f2a9c"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running service and what it is wired to."""

    url: str
    db_path: Path
    apify: FakeApify
    settings: Settings

    def client(self) -> ApifyClient:
        """An Apify client for the fake that does not wait between retries."""
        return self.apify.client()

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
        """Poll until condition holds (background work after a response)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the service's background work")
            time.sleep(0.05)

    def scalar(self, sql: str, params: object = None) -> object:
        """One value from the store."""
        with connect(self.db_path) as con:
            return con.execute(sql, params).fetchall()[0][0]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The HTTP service on a free port, its Apify pointed at a fake on 127.0.0.1."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    db_path = tmp_path / "service.duckdb"
    with FakeApify() as apify:
        settings = load_settings(
            apify_token=apify.token,
            apify_webhook_secret=WEBHOOK_SECRET,
            public_base_url=url,
        )
        svc = Service(url, db_path, apify, settings)
        app = create_app(settings, db_path=db_path, apify_client_factory=svc.client)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield svc
        finally:
            server.should_exit = True
            thread.join(10)
