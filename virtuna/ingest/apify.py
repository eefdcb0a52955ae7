"""A small synchronous client for the Apify API v2: start actor runs, poll them, read datasets.

The token travels only in the `Authorization: Bearer` header, never in a URL, a log line or an
error message. Requests are retried (bounded, exponential backoff, `Retry-After` honoured) on
HTTP 429, 5xx, timeouts and connection errors; any other 4xx fails at once.

Runs can announce their end through an ad-hoc webhook: `start_run(webhook_url=...)` passes
Apify a base64 JSON array of webhooks as the `webhooks` query parameter. Apify then POSTs its
default payload (`userId`, `createdAt`, `eventType`, `eventData: {actorId, actorRunId}`,
`resource: <run>`) with the `WEBHOOK_SECRET_HEADER` header set to the shared secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from virtuna.config import Settings, get_settings
from virtuna.ingest.provider_http import ProviderClient, ProviderError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EVENT_TYPES",
    "TERMINAL_STATUSES",
    "WEBHOOK_SECRET_HEADER",
    "ApifyClient",
    "ApifyError",
    "ApifyRun",
    "client_from_settings",
    "parse_apify_time",
]

DEFAULT_BASE_URL = "https://api.apify.com"
WEBHOOK_SECRET_HEADER = "X-Virtuna-Webhook-Secret"
DEFAULT_EVENT_TYPES = (
    "ACTOR.RUN.SUCCEEDED",
    "ACTOR.RUN.FAILED",
    "ACTOR.RUN.TIMED_OUT",
    "ACTOR.RUN.ABORTED",
)
RUN_STATUSES = (
    "READY",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMING-OUT",
    "TIMED-OUT",
    "ABORTING",
    "ABORTED",
)
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})


class ApifyError(ProviderError):
    """An Apify API call failed; the message names method, path, status and Apify's error."""

    def __init__(self, message: str, *, error_type: str | None = None, **details: Any) -> None:
        """Keep Apify's error type beside the shared details."""
        super().__init__(message, **details)
        self.error_type = error_type


def parse_apify_time(value: Any) -> datetime | None:
    """A naive UTC datetime from an Apify ISO string like `2023-11-18T18:14:52.123Z`."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


@dataclass(frozen=True)
class ApifyRun:
    """One actor run as Apify reports it (`raw` keeps the whole run object)."""

    id: str
    act_id: str
    status: str
    default_dataset_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ApifyRun:
        """Build from the `data` object of Apify's run responses (or a webhook's `resource`)."""
        if not isinstance(data, dict):
            raise ApifyError(f"Apify run object is not a JSON object: {type(data).__name__}")
        missing = [key for key in ("id", "status") if not data.get(key)]
        if missing:
            raise ApifyError(f"Apify run object lacks {', '.join(missing)}")
        return cls(
            id=str(data["id"]),
            act_id=str(data.get("actId") or ""),
            status=str(data["status"]),
            default_dataset_id=data.get("defaultDatasetId") or None,
            started_at=parse_apify_time(data.get("startedAt")),
            finished_at=parse_apify_time(data.get("finishedAt")),
            raw=data,
        )

    @property
    def is_terminal(self) -> bool:
        """The run has ended (succeeded, failed, timed out or aborted)."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """The run ended successfully."""
        return self.status == "SUCCEEDED"


def _path_id(value: str) -> str:
    """An id or `user~name` as one URL path segment (`user/name` becomes `user~name`)."""
    return quote(value.replace("/", "~"), safe="~")


def _header_int(response: httpx.Response, name: str) -> int | None:
    """An integer response header, None when absent or not a number."""
    raw = response.headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class ApifyClient(ProviderClient):
    """Synchronous Apify API v2 client (a context manager; `close()` when done)."""

    provider = "Apify"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 30.0,
        **options: Any,
    ) -> None:
        """A client sending token as a Bearer header to base_url (options: see ProviderClient)."""
        super().__init__(token, base_url=base_url, timeout_s=timeout_s, **options)

    # ------------------------------------------------------------------ API calls

    def start_run(
        self,
        actor_id: str,
        run_input: dict[str, Any],
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    ) -> ApifyRun:
        """Start an actor run with run_input; optionally register an ad-hoc webhook."""
        params: dict[str, str] = {}
        if webhook_url is not None:
            params["webhooks"] = self.encode_webhooks(webhook_url, webhook_secret, event_types)
        path = f"/v2/acts/{_path_id(actor_id)}/runs"
        # Not idempotent: a retry after a lost answer would start (and bill) a second run.
        response = self._request("POST", path, params=params, json=run_input, idempotent=False)
        return ApifyRun.from_api(self._data(response, "POST", path))

    def get_run(self, run_id: str) -> ApifyRun:
        """The current state of one actor run."""
        path = f"/v2/actor-runs/{_path_id(run_id)}"
        response = self._request("GET", path)
        return ApifyRun.from_api(self._data(response, "GET", path))

    def iter_dataset_items(
        self, dataset_id: str, *, page_size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield a dataset's items page by page (clean JSON), following the pagination headers."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        path = f"/v2/datasets/{_path_id(dataset_id)}/items"
        offset = 0
        while True:
            params = {"clean": "true", "format": "json", "offset": offset, "limit": page_size}
            response = self._request("GET", path, params=params)
            page = self._json(response, "GET", path)
            if not isinstance(page, list):
                raise self._fail(
                    f"expected a JSON array of items, got {type(page).__name__}", "GET", path
                )
            if not page:
                return
            items = [item for item in page if isinstance(item, dict)]
            yield items
            # Advance by what the server says it returned, but never less than what arrived,
            # so a server ignoring `offset` cannot keep us on the same page.
            page_offset = _header_int(response, "X-Apify-Pagination-Offset")
            count = _header_int(response, "X-Apify-Pagination-Count")
            total = _header_int(response, "X-Apify-Pagination-Total")
            reported_end = (page_offset if page_offset is not None else offset) + (
                count if count is not None else len(page)
            )
            offset = max(reported_end, offset + len(page))
            if total is not None:
                if offset >= total:
                    return
            elif len(page) < page_size:
                return

    def iter_items(self, dataset_id: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Yield a dataset's items one by one (see iter_dataset_items)."""
        for page in self.iter_dataset_items(dataset_id, page_size=page_size):
            yield from page

    @staticmethod
    def encode_webhooks(
        webhook_url: str,
        webhook_secret: str | None = None,
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    ) -> str:
        """The `webhooks` query value: base64 of a JSON array with one ad-hoc webhook."""
        if not event_types:
            raise ValueError("an ad-hoc webhook needs at least one event type")
        webhook: dict[str, Any] = {"eventTypes": list(event_types), "requestUrl": webhook_url}
        if webhook_secret is not None:
            webhook["headersTemplate"] = json.dumps({WEBHOOK_SECRET_HEADER: webhook_secret})
        encoded = json.dumps([webhook], separators=(",", ":")).encode("utf-8")
        return base64.b64encode(encoded).decode("ascii")

    # ------------------------------------------------------------------ plumbing

    def _fail(
        self,
        problem: str,
        method: str,
        path: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        attempts: int | None = None,
    ) -> ApifyError:
        """An ApifyError for method + path (query never included) with the token redacted."""
        return ApifyError(
            self._redact(f"Apify {method} {path}: {problem}"),
            method=method,
            path=path,
            status=status,
            error_type=error_type,
            attempts=attempts,
        )

    def _http_error(
        self, response: httpx.Response, method: str, path: str, attempts: int
    ) -> ApifyError:
        """An ApifyError from an unsuccessful response, with Apify's error type and message."""
        error_type: str | None = None
        message = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            error_type = str(error.get("type") or "") or None
            message = str(error.get("message") or "")
        elif response.text:
            message = response.text[:200]
        detail = f"HTTP {response.status_code}"
        if error_type:
            detail += f" {error_type}"
        if message:
            detail += f": {message}"
        return self._fail(
            detail,
            method,
            path,
            status=response.status_code,
            error_type=error_type,
            attempts=attempts,
        )

    def _json(self, response: httpx.Response, method: str, path: str) -> Any:
        """The response body as JSON; a body that is not JSON is an ApifyError."""
        try:
            return response.json()
        except ValueError:
            raise self._fail(
                f"HTTP {response.status_code} answer is not JSON", method, path
            ) from None

    def _data(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        """The `data` object of an Apify response."""
        body = self._json(response, method, path)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise self._fail("answer has no `data` object", method, path)
        return data


def client_from_settings(settings: Settings | None = None, **kwargs: Any) -> ApifyClient | None:
    """An ApifyClient from APIFY_TOKEN, or None when the token is not set."""
    settings = settings if settings is not None else get_settings()
    token = settings.apify_token.get_secret_value() if settings.apify_token else ""
    if not token:
        return None
    return ApifyClient(token, **kwargs)
