"""A fake Apify API v2 on 127.0.0.1 speaking the real wire format (runs, datasets, webhooks).

    with FakeApify() as fake:
        client = ApifyClient(fake.token, base_url=fake.base_url)
        run = client.start_run("clockworks~tiktok-scraper", {...}, webhook_url=..., ...)
        fake.finish_run(run.id, [make_item()])
        fake.deliver_webhook(run.id)          # POSTs Apify's default payload to requestUrl

Only `Authorization: Bearer <fake.token>` is accepted (a `?token=` query parameter is not).
Every request is recorded in `fake.requests`, including failed and rejected ones.
The fake is written independently of `virtuna.ingest.apify` so it checks the client's format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from virtuna.ingest.apify import ApifyClient

SECRET_HEADER = "X-Virtuna-Webhook-Secret"
_ID_ALPHABET = string.ascii_letters + string.digits
_RUN_PATH = re.compile(r"^/v2/actor-runs/([^/]+)/?$")
_START_PATH = re.compile(r"^/v2/acts/([^/]+)/runs/?$")
_ITEMS_PATH = re.compile(r"^/v2/datasets/([^/]+)/items/?$")
_ERROR_TYPES = {
    400: "invalid-parameter",
    401: "token-not-valid",
    403: "insufficient-permissions",
    404: "record-not-found",
    429: "rate-limit-exceeded",
}


class RecordedRequest(NamedTuple):
    """One request the fake received (headers with lower-case names; json None when absent)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class _Injection:
    """A pending failure or delay for paths starting with `prefix`."""

    prefix: str
    times: int
    status: int = 0
    retry_after: float | None = None
    body: Any = None
    seconds: float = 0.0


def apify_id() -> str:
    """A fresh 17-character id like Apify's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))


def apify_now() -> str:
    """The current time in Apify's format: `2023-11-18T18:14:52.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """Apify's error shape: {"error": {"type": ..., "message": ...}}."""
    kind = error_type or _ERROR_TYPES.get(status) or "internal-server-error"
    return {"error": {"type": kind, "message": message}}


class _Server(ThreadingHTTPServer):
    """The HTTP server; keeps a reference to its FakeApify."""

    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent clients must queue, not be refused
    block_on_close = False
    fake: FakeApify

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (timeouts are provoked on purpose)."""


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the FakeApify."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end on their own
    server: _Server

    def _dispatch(self) -> None:
        """Handle one request; a client that went away is not an error."""
        try:
            self.server.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


class FakeApify:
    """A fake Apify API on a free port of 127.0.0.1 (a context manager)."""

    def __init__(self, token: str = "apify_api_fake_token_0123456789") -> None:
        """A stopped fake accepting only this Bearer token; `start()` or `with` runs it."""
        self.token = token
        self.user_id = apify_id()
        self.requests: list[RecordedRequest] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, list[dict[str, Any]]] = {}
        self.webhooks: dict[str, list[dict[str, Any]]] = {}  # run id -> decoded ad-hoc webhooks
        self.run_inputs: dict[str, Any] = {}
        self.sink: list[RecordedRequest] = []  # POSTs received on sink_url
        self.actor_ids: dict[str, str] = {}  # "user~name" -> Apify's internal actor id
        # Answers runs as they start: (actor, input) -> (items, status), or None to leave the
        # run RUNNING (set by `finish_runs_with`).
        self.responder: Callable[[str, Any], tuple[list[dict[str, Any]], str] | None] | None = None
        self._failures: list[_Injection] = []
        self._delays: list[_Injection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (pass it as the client's base_url)."""
        if self._server is None:
            raise RuntimeError("FakeApify is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def sink_url(self) -> str:
        """A URL on the fake that records POSTed webhooks in `sink` (a stand-in receiver)."""
        return f"{self.base_url}/_sink/apify-webhook"

    def start(self) -> FakeApify:
        """Serve in a background thread and return once a request has been answered."""
        if self._server is not None:
            return self
        self._stopping.clear()
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
        """Stop serving and free the port (delayed requests are cut short)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeApify:
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

    def actor_id_for(self, name: str) -> str:
        """Apify's internal id for an actor name like `clockworks~tiktok-scraper` (stable)."""
        name = name.replace("/", "~")
        digest = hashlib.sha256(name.encode()).digest()
        return self.actor_ids.setdefault(
            name, "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:17])
        )

    def add_dataset(self, items: list[dict[str, Any]]) -> str:
        """A new dataset holding items; returns its id."""
        dataset_id = apify_id()
        with self._lock:
            self.datasets[dataset_id] = list(items)
        return dataset_id

    def create_run(self, actor: str = "clockworks~tiktok-scraper", status: str = "RUNNING") -> str:
        """A run created directly (no HTTP), as if started from the console; returns its id."""
        return self._new_run(actor, status, input_len=0)["id"]

    def finish_run(
        self, run_id: str, items: list[dict[str, Any]], status: str = "SUCCEEDED"
    ) -> dict[str, Any]:
        """Append items to the run's dataset and end it with status; returns the run object."""
        with self._lock:
            run = self.runs[run_id]
            self.datasets[run["defaultDatasetId"]].extend(items)
            run["status"] = status
            run["finishedAt"] = apify_now()
            run["exitCode"] = 0 if status == "SUCCEEDED" else 1
            run["stats"]["runTimeSecs"] = 1.0
            return json.loads(json.dumps(run))

    def finish_runs_with(
        self, responder: Callable[[str, Any], tuple[list[dict[str, Any]], str] | None]
    ) -> None:
        """End every run started from now on at once with what responder(actor, input) says."""
        self.responder = responder

    def set_status(self, run_id: str, status: str) -> None:
        """Change a run's status without finishing it (e.g. READY -> RUNNING)."""
        with self._lock:
            self.runs[run_id]["status"] = status

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
                _Injection(path_prefix, times, status=status, retry_after=retry_after, body=body)
            )

    def client(self) -> ApifyClient:
        """A real ApifyClient pointed at this fake that does not wait between retries."""
        return ApifyClient(self.token, base_url=self.base_url, backoff_s=0, sleep=lambda _: None)

    def heal(self) -> None:
        """Drop every pending injected failure and delay (Apify is healthy again)."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def delay_next(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` matching requests for seconds before answering them."""
        with self._lock:
            self._delays.append(_Injection(path_prefix, times, seconds=seconds))

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path starts with path_prefix (and method, if given)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        ]

    def webhook_payload(
        self, run_id: str, event_type: str = "ACTOR.RUN.SUCCEEDED"
    ) -> dict[str, Any]:
        """Apify's default webhook payload for the run's current state."""
        with self._lock:
            run = json.loads(json.dumps(self.runs[run_id]))
        return {
            "userId": run["userId"],
            "createdAt": apify_now(),
            "eventType": event_type,
            "eventData": {"actorId": run["actId"], "actorRunId": run["id"]},
            "resource": run,
        }

    def deliver_webhook(
        self,
        run_id: str,
        event_type: str = "ACTOR.RUN.SUCCEEDED",
        secret: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        """POST the default payload to the run's webhook requestUrl with its template headers.

        secret, when given, replaces the secret header's value. client (e.g. a Starlette
        TestClient) sends the request instead of a fresh httpx call over the network.
        """
        webhook = self._webhook_for(run_id, event_type)
        headers: dict[str, str] = {"Content-Type": "application/json"}
        template = webhook.get("headersTemplate")
        if isinstance(template, dict):
            headers.update({str(k): str(v) for k, v in template.items()})
        if secret is not None:
            headers[SECRET_HEADER] = secret
        headers["X-Apify-Webhook"] = webhook["id"]
        headers["X-Apify-Webhook-Dispatch-Id"] = apify_id()
        body = json.dumps(self.webhook_payload(run_id, event_type)).encode()
        if client is not None:
            return client.post(webhook["requestUrl"], content=body, headers=headers)
        return httpx.post(webhook["requestUrl"], content=body, headers=headers, timeout=10)

    # ------------------------------------------------------------------ internals

    def _webhook_for(self, run_id: str, event_type: str) -> dict[str, Any]:
        """The run's ad-hoc webhook subscribed to event_type."""
        with self._lock:
            if run_id not in self.runs:
                raise KeyError(f"no run {run_id!r}")
            hooks = list(self.webhooks.get(run_id, []))
        if not hooks:
            raise LookupError(f"run {run_id} was started without an ad-hoc webhook")
        for hook in hooks:
            if event_type in hook.get("eventTypes", []):
                return hook
        raise LookupError(f"no webhook of run {run_id} subscribes to {event_type}")

    def _new_run(self, actor: str, status: str, input_len: int) -> dict[str, Any]:
        """Create and remember a run object with Apify's fields."""
        run_id = apify_id()
        dataset_id = apify_id()
        run = {
            "id": run_id,
            "actId": self.actor_id_for(actor),
            "userId": self.user_id,
            "actorTaskId": None,
            "startedAt": apify_now(),
            "finishedAt": None,
            "status": status,
            "statusMessage": None,
            "isStatusMessageTerminal": None,
            "meta": {"origin": "API", "userAgent": "virtuna-fake"},
            "stats": {
                "inputBodyLen": input_len,
                "restartCount": 0,
                "resurrectCount": 0,
                "computeUnits": 0,
                "runTimeSecs": 0,
            },
            "options": {
                "build": "latest",
                "timeoutSecs": 3600,
                "memoryMbytes": 1024,
                "diskMbytes": 2048,
            },
            "buildId": apify_id(),
            "buildNumber": "0.1.1",
            "exitCode": None,
            "defaultKeyValueStoreId": apify_id(),
            "defaultDatasetId": dataset_id,
            "defaultRequestQueueId": apify_id(),
            "containerUrl": f"https://{apify_id().lower()}.runs.apify.net",
            "usageTotalUsd": 0,
        }
        with self._lock:
            self.runs[run_id] = run
            self.datasets[dataset_id] = []
        return run

    def _take(self, queue: list[_Injection], path: str) -> _Injection | None:
        """Consume one use of the first injection matching path."""
        with self._lock:
            for injection in queue:
                if path.startswith(injection.prefix) and injection.times > 0:
                    injection.times -= 1
                    if injection.times == 0:
                        queue.remove(injection)
                    return injection
        return None

    def _handle(self, handler: _Handler) -> None:
        """Record, inject delays/failures, authenticate and route one request."""
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if path == "/_health":
            self._send(handler, 200, {"ok": True})
            return
        recorded = RecordedRequest(
            handler.command, path, query, {k.lower(): v for k, v in handler.headers.items()}, body
        )
        self.requests.append(recorded)
        if path.startswith("/_sink/"):
            self.sink.append(recorded)
            self._send(handler, 200, {"received": True})
            return

        delay = self._take(self._delays, path)
        if delay is not None and self._stopping.wait(delay.seconds):
            handler.close_connection = True
            return
        failure = self._take(self._failures, path)
        if failure is not None:
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            payload = failure.body
            if payload is None:
                payload = error_body(failure.status, "Injected failure")
            self._send(handler, failure.status, payload, headers)
            return

        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            message = "Authentication token was not valid"
            self._send(handler, 401, error_body(401, message, "token-not-valid"))
            return
        status, payload, headers = self._route(handler.command, path, query, body)
        self._send(handler, status, payload, headers)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, extra headers) for an authenticated API request."""
        if method == "POST" and (match := _START_PATH.match(path)):
            return self._start_run(match.group(1), query, body)
        if method == "GET" and (match := _RUN_PATH.match(path)):
            with self._lock:
                run = self.runs.get(match.group(1))
                data = json.loads(json.dumps(run)) if run is not None else None
            if data is None:
                return 404, error_body(404, "Actor run was not found"), {}
            return 200, {"data": data}, {}
        if method == "GET" and (match := _ITEMS_PATH.match(path)):
            return self._items(match.group(1), query)
        return 404, error_body(404, f"Page not found: {method} {path}", "page-not-found"), {}

    def _start_run(
        self, actor: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """POST /v2/acts/{actorId}/runs: create a RUNNING run and keep its ad-hoc webhooks."""
        if "/" in actor:
            return 404, error_body(404, "Actor was not found"), {}
        hooks: list[dict[str, Any]] = []
        if "webhooks" in query:
            try:
                decoded = json.loads(base64.b64decode(query["webhooks"], validate=True))
            except (binascii.Error, ValueError):
                return 400, error_body(400, "Webhooks parameter is not base64 JSON"), {}
            if not isinstance(decoded, list) or not all(isinstance(h, dict) for h in decoded):
                return 400, error_body(400, "Webhooks parameter must be a JSON array"), {}
            for hook in decoded:
                if not hook.get("eventTypes") or not hook.get("requestUrl"):
                    return 400, error_body(400, "Webhook needs eventTypes and requestUrl"), {}
                hook = dict(hook)
                if "headersTemplate" in hook:
                    try:
                        hook["headersTemplate"] = json.loads(hook["headersTemplate"])
                    except (TypeError, ValueError):
                        return 400, error_body(400, "headersTemplate is not a JSON string"), {}
                hook["id"] = apify_id()
                hooks.append(hook)
        run = self._new_run(actor, "RUNNING", input_len=len(json.dumps(body or {})))
        with self._lock:
            self.webhooks[run["id"]] = hooks
            self.run_inputs[run["id"]] = body
            data = json.loads(json.dumps(run))
        answer = self.responder(actor, body) if self.responder is not None else None
        if answer is not None:
            self.finish_run(run["id"], *answer)  # the run's later GETs show it finished
        return 201, {"data": data}, {"Location": f"/v2/actor-runs/{run['id']}"}

    def _items(self, dataset_id: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """GET /v2/datasets/{datasetId}/items: a JSON array page with pagination headers."""
        with self._lock:
            stored = self.datasets.get(dataset_id)
            items = list(stored) if stored is not None else None
        if items is None:
            return 404, error_body(404, "Dataset was not found"), {}
        if query.get("format", "json") != "json":
            return 400, error_body(400, "The fake serves format=json only"), {}
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query["limit"]) if "limit" in query else None
        except ValueError:
            return 400, error_body(400, "offset and limit must be integers"), {}
        if offset < 0 or (limit is not None and limit < 0):
            return 400, error_body(400, "offset and limit must not be negative"), {}
        clean = query.get("clean") in ("true", "1")
        if clean:
            items = [item for item in items if item]
        end = len(items) if limit is None else offset + limit
        # Only the page is copied: copying the whole dataset per page made paging quadratic.
        page = json.loads(json.dumps(items[offset:end]))
        if clean:
            page = [{k: v for k, v in item.items() if not k.startswith("#")} for item in page]
        headers = {
            "X-Apify-Pagination-Offset": str(offset),
            "X-Apify-Pagination-Limit": str(limit if limit is not None else len(items)),
            "X-Apify-Pagination-Count": str(len(page)),
            "X-Apify-Pagination-Total": str(len(items)),
        }
        return 200, page, headers

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
def fake_apify() -> Iterator[FakeApify]:
    """A running FakeApify, stopped after the test."""
    with FakeApify() as fake:
        yield fake
