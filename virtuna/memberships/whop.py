"""A small synchronous client for Whop's v5 company API: retrieve one membership.

Implemented endpoint (Whop API v5, company routes, as documented at
docs.whop.com/api-reference/v5 — "Retrieve a Membership"):

    GET https://api.whop.com/api/v5/company/memberships/{id}
    Authorization: Bearer <company API key>          (the same key the v2 API took)

`{id}` is the membership id (`mem_...`; Whop also accepts the membership's license key). The
answer is the membership object itself, without an envelope. The fields read here are `id`,
`status` (trialing, active, past_due, completed, canceled, expired, unresolved, drafted, ...),
`valid` (whether the membership grants access now), `product_id`, `plan_id`, `user_id`,
`cancel_at_period_end`, `renewal_period_end` and `expires_at` (Unix seconds or null). The
parser also accepts the later shapes (`product: {"id": ...}`, ISO 8601 times) so a move to the
v1 API changes the path, not the model. Errors arrive as `{"error": {"status", "message"}}`.

The key travels only in the `Authorization: Bearer` header, never in a URL, a log line or an
error message. Requests are retried (bounded, exponential backoff, `Retry-After` honoured) on
HTTP 429, 5xx, timeouts and connection errors; any other 4xx (401, 403, 404) fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from virtuna.config import Settings, get_settings
from virtuna.ingest.provider_http import ProviderClient, ProviderError

__all__ = [
    "DEFAULT_BASE_URL",
    "MEMBERSHIP_PATH",
    "WhopClient",
    "WhopError",
    "WhopMembership",
    "client_from_settings",
    "parse_whop_time",
]

DEFAULT_BASE_URL = "https://api.whop.com"
MEMBERSHIP_PATH = "/api/v5/company/memberships/{id}"


class WhopError(ProviderError):
    """A Whop API call failed; the message names method, path, status and Whop's message."""


def parse_whop_time(value: Any) -> datetime | None:
    """A naive UTC datetime from Unix seconds (v5) or an ISO 8601 string (v1); else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return parse_whop_time(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _ref_id(data: dict[str, Any], name: str) -> str | None:
    """`<name>_id`, or `<name>` as an id string or an object with an `id` (later API shapes)."""
    value = data.get(f"{name}_id")
    if value in (None, ""):
        value = data.get(name)
        if isinstance(value, dict):
            value = value.get("id")
    return str(value) if value not in (None, "") and not isinstance(value, dict) else None


@dataclass(frozen=True)
class WhopMembership:
    """One Whop membership as the API reports it (`raw` keeps the whole object)."""

    id: str
    status: str
    valid: bool | None
    product_id: str | None
    plan_id: str | None
    user_id: str | None
    cancel_at_period_end: bool
    renewal_period_end: datetime | None
    expires_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Any) -> WhopMembership:
        """Build from the membership object of Whop's retrieve-membership answer."""
        if not isinstance(data, dict):
            raise WhopError(f"Whop membership is not a JSON object: {type(data).__name__}")
        if not data.get("id"):
            raise WhopError("Whop membership object lacks id")
        valid = data.get("valid")
        return cls(
            id=str(data["id"]),
            status=str(data.get("status") or "").strip().lower(),
            valid=valid if isinstance(valid, bool) else None,
            product_id=_ref_id(data, "product"),
            plan_id=_ref_id(data, "plan"),
            user_id=_ref_id(data, "user"),
            cancel_at_period_end=data.get("cancel_at_period_end") is True,
            renewal_period_end=parse_whop_time(data.get("renewal_period_end")),
            expires_at=parse_whop_time(data.get("expires_at")),
            raw=data,
        )

    @property
    def period_end(self) -> datetime | None:
        """End of the paid-for period: the renewal period's end, else the expiry time."""
        return self.renewal_period_end or self.expires_at


class WhopClient(ProviderClient):
    """Synchronous Whop API client (a context manager; `close()` when done)."""

    provider = "Whop"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 15.0,
        **options: Any,
    ) -> None:
        """A client sending api_key as a Bearer header to base_url (options: ProviderClient)."""
        super().__init__(api_key, base_url=base_url, timeout_s=timeout_s, **options)

    # ------------------------------------------------------------------ API calls

    def get_membership(self, membership_id: str) -> WhopMembership:
        """One membership by id (`mem_...`) or license key."""
        if not membership_id or not membership_id.strip():
            raise ValueError("a membership id is required")
        path = MEMBERSHIP_PATH.format(id=quote(membership_id.strip(), safe=""))
        response = self._request("GET", path)
        try:
            body = response.json()
        except ValueError:
            problem = f"HTTP {response.status_code} answer is not JSON"
            raise self._fail(problem, "GET", path) from None
        try:
            return WhopMembership.from_api(body)
        except WhopError as exc:
            raise self._fail(str(exc), "GET", path) from None

    # ------------------------------------------------------------------ plumbing

    def _fail(
        self,
        problem: str,
        method: str,
        path: str,
        *,
        status: int | None = None,
        attempts: int | None = None,
    ) -> WhopError:
        """A WhopError for method + path with the key redacted."""
        return WhopError(
            self._redact(f"Whop {method} {path}: {problem}"),
            method=method,
            path=path,
            status=status,
            attempts=attempts,
        )

    def _http_error(
        self, response: httpx.Response, method: str, path: str, attempts: int
    ) -> WhopError:
        """A WhopError from an unsuccessful response, with Whop's error message."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message = ""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("type") or "")
        elif isinstance(error, str):
            message = error
        elif isinstance(body, dict) and body.get("message"):
            message = str(body["message"])
        elif response.text:
            message = response.text[:200]
        detail = f"HTTP {response.status_code}" + (f": {message}" if message else "")
        return self._fail(detail, method, path, status=response.status_code, attempts=attempts)


def client_from_settings(settings: Settings | None = None, **kwargs: Any) -> WhopClient | None:
    """A WhopClient from WHOP_API_KEY, or None when the key is not set."""
    settings = settings if settings is not None else get_settings()
    key = settings.whop_api_key.get_secret_value() if settings.whop_api_key else ""
    if not key:
        return None
    return WhopClient(key, **kwargs)
