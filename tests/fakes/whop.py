"""A fake Whop API v5 (company routes) on 127.0.0.1 speaking the documented wire format.

    with FakeWhop() as fake:
        membership = fake.add_membership(product_id="prod_pro", status="active")
        client = fake.client()
        client.get_membership(membership["id"])

It serves `GET /api/v5/company/memberships/{id}` (a `mem_` id or the license key) with the
bare membership object (`id`, `product_id`, `user_id`, `plan_id`, `status`, `valid`,
`cancel_at_period_end`, `renewal_period_start`, `renewal_period_end`, `expires_at` in Unix
seconds, ...). Only `Authorization: Bearer <fake.token>` is accepted; anything else gets 401.
Errors use Whop's shape `{"error": {"status": <code>, "message": ...}}`. Every request is
recorded in `fake.requests`, including failed and rejected ones. The fake is written
independently of `virtuna.memberships.whop` so it checks the client's format.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from virtuna.memberships.whop import WhopClient

MEMBERSHIPS_PREFIX = "/api/v5/company/memberships/"
_MEMBERSHIP_PATH = re.compile(r"^/api/v5/company/memberships/([^/]+)/?$")
_ID_ALPHABET = string.ascii_letters + string.digits
_DAY = 86_400


class RecordedRequest(NamedTuple):
    """One request the fake received (headers with lower-case names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Injection:
    """A pending failure for paths starting with `prefix`."""

    prefix: str
    times: int
    status: int
    retry_after: float | None = None
    body: Any = None


def whop_id(prefix: str) -> str:
    """A fresh id like Whop's, e.g. `mem_AbC123xYz7890q`."""
    return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


def error_body(status: int, message: str) -> dict[str, Any]:
    """Whop's error shape: {"error": {"status": ..., "message": ...}}."""
    return {"error": {"status": status, "message": message}}


class _Server(ThreadingHTTPServer):
    """The HTTP server; keeps a reference to its FakeWhop."""

    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent clients must queue, not be refused
    block_on_close = False
    fake: FakeWhop

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up."""


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the FakeWhop."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end on their own
    server: _Server

    def _dispatch(self) -> None:
        """Handle one request; a client that went away is not an error."""
        try:
            self.server.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


class FakeWhop:
    """A fake Whop API on a free port of 127.0.0.1 (a context manager)."""

    def __init__(self, token: str = "whop_fake_company_key_0123456789abcdef") -> None:
        """A stopped fake accepting only this Bearer token; `start()` or `with` runs it."""
        self.token = token
        self.requests: list[RecordedRequest] = []
        self.memberships: dict[str, dict[str, Any]] = {}
        self._failures: list[_Injection] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (pass it as the client's base_url)."""
        if self._server is None:
            raise RuntimeError("FakeWhop is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeWhop:
        """Serve in a background thread and return once a request has been answered."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        httpx.get(f"{self.base_url}/_health", timeout=5).raise_for_status()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeWhop:
        """Start and return the fake."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the fake."""
        self.stop()

    # ------------------------------------------------------------------ test controls

    def add_membership(
        self,
        *,
        membership_id: str | None = None,
        product_id: str = "prod_starter0000000",
        user_id: str | None = None,
        status: str = "active",
        valid: bool | None = None,
        cancel_at_period_end: bool = False,
        renewal_period_end: int | None = None,
        expires_at: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store a membership in the v5 shape (valid defaults from status); return a copy."""
        now = int(time.time())
        if valid is None:
            valid = status in ("active", "trialing", "past_due", "canceling")
        if renewal_period_end is None and status in ("active", "trialing", "past_due"):
            renewal_period_end = now + 30 * _DAY
        membership: dict[str, Any] = {
            "id": membership_id or whop_id("mem"),
            "product_id": product_id,
            "user_id": user_id or whop_id("user"),
            "plan_id": whop_id("plan"),
            "page_id": whop_id("biz"),
            "created_at": now - 60 * _DAY,
            "expires_at": expires_at,
            "renewal_period_start": (
                renewal_period_end - 30 * _DAY if renewal_period_end is not None else None
            ),
            "renewal_period_end": renewal_period_end,
            "quantity": 1,
            "status": status,
            "valid": valid,
            "cancel_at_period_end": cancel_at_period_end,
            "license_key": "-".join(secrets.token_hex(3).upper() for _ in range(3)),
            "metadata": {},
            "checkout_id": None,
            "affiliate_username": None,
            "manage_url": "https://whop.com/orders/",
            "company_buyer_id": None,
            "marketplace": False,
            "custom_field_responses": [],
        }
        membership.update(extra)
        with self._lock:
            self.memberships[membership["id"]] = membership
            return json.loads(json.dumps(membership))

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests whose path starts with path_prefix with status."""
        with self._lock:
            self._failures.append(
                _Injection(path_prefix, times, status, retry_after=retry_after, body=body)
            )

    def client(self, token: str | None = None, **kwargs: Any) -> WhopClient:
        """A real WhopClient pointed at this fake that does not wait between retries."""
        options: dict[str, Any] = {"backoff_s": 0, "sleep": lambda _: None, **kwargs}
        return WhopClient(token or self.token, base_url=self.base_url, **options)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path starts with path_prefix (and method, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        ]

    # ------------------------------------------------------------------ internals

    def _take_failure(self, path: str) -> _Injection | None:
        """Consume one use of the first injected failure matching path."""
        with self._lock:
            for injection in self._failures:
                if path.startswith(injection.prefix) and injection.times > 0:
                    injection.times -= 1
                    if injection.times == 0:
                        self._failures.remove(injection)
                    return injection
        return None

    def _handle(self, handler: _Handler) -> None:
        """Record, inject failures, authenticate and route one request."""
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        if path == "/_health":
            self._send(handler, 200, {"ok": True})
            return
        headers = {k.lower(): v for k, v in handler.headers.items()}
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, path, query, headers))

        failure = self._take_failure(path)
        if failure is not None:
            extra = {}
            if failure.retry_after is not None:
                extra["Retry-After"] = f"{failure.retry_after:g}"
            payload = failure.body
            if payload is None:
                payload = error_body(failure.status, "Injected failure")
            self._send(handler, failure.status, payload, extra)
            return

        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            message = "You must be authenticated with a valid API key to access this endpoint"
            self._send(handler, 401, error_body(401, message))
            return
        match = _MEMBERSHIP_PATH.match(path)
        if match is None:
            self._send(handler, 404, error_body(404, "Route not found"))
            return
        if handler.command != "GET":
            self._send(handler, 405, error_body(405, "Method not allowed"))
            return
        membership = self._find(match.group(1))
        if membership is None:
            self._send(handler, 404, error_body(404, "Membership not found"))
            return
        self._send(handler, 200, membership)

    def _find(self, key: str) -> dict[str, Any] | None:
        """A copy of the membership with this id or license key, None when unknown."""
        with self._lock:
            found = self.memberships.get(key)
            if found is None:
                found = next(
                    (m for m in self.memberships.values() if m.get("license_key") == key), None
                )
            return json.loads(json.dumps(found)) if found is not None else None

    @staticmethod
    def _send(
        handler: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Write a JSON response with a Content-Length (keep-alive friendly)."""
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def fake_whop() -> Iterator[FakeWhop]:
    """A running FakeWhop, stopped after the test."""
    with FakeWhop() as fake:
        yield fake
