"""What the Apify and Whop clients share: a Bearer-token httpx client with bounded retries.

429, 5xx, timeouts and connection errors are retried with exponential backoff (or the server's
`Retry-After`, capped at MAX_WAIT_S); other 4xx fail at once. A request that is not idempotent
is retried only when it surely was not processed: a 429 or a connection that never opened.
Errors name the method and path (never the query, which may carry secrets) and never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from virtuna.log import get_logger

MAX_WAIT_S = 30.0
FILTERED = "[Filtered]"

log = get_logger(__name__)


class ProviderError(RuntimeError):
    """A provider API call failed; the message names method, path, status and the cause."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        """Keep the details as attributes; the message is what str() shows."""
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.attempts = attempts


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (HTTP dates are ignored), None when absent."""
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def retryable(status: int) -> bool:
    """Whether an HTTP status is worth another attempt."""
    return status == 429 or status >= 500


class ProviderClient:
    """Base of a provider client: subclasses set `provider` and build their errors."""

    provider = "provider"

    def __init__(
        self,
        token: str,
        *,
        base_url: str,
        timeout_s: float,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """A client sending token as a Bearer header to base_url."""
        if not token:
            raise ValueError(f"a {self.provider} API token is required")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._token = token
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"virtuna-{self.provider.lower()}-client",
            },
        )

    def __repr__(self) -> str:
        """The client's base URL (never the token)."""
        return f"{type(self).__name__}(base_url={str(self._http.base_url)!r})"

    def __enter__(self) -> Self:
        """The client itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _redact(self, text: str) -> str:
        """text with the token replaced (in case a server echoes it back)."""
        return text.replace(self._token, FILTERED)

    def _fail(
        self, problem: str, method: str, path: str, **details: Any
    ) -> ProviderError:  # pragma: no cover - every subclass builds its own error type
        """The provider's error for method + path, with the token redacted."""
        raise NotImplementedError

    def _http_error(
        self, response: httpx.Response, method: str, path: str, attempts: int
    ) -> ProviderError:  # pragma: no cover - every subclass reads its provider's error body
        """The provider's error for an unsuccessful response."""
        raise NotImplementedError

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One API call with bounded retries (see the module docstring)."""
        attempts = self.max_retries + 1
        last: ProviderError | None = None
        for attempt in range(attempts):
            wait_hint: float | None = None
            status: int | None = None
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:  # includes httpx.TimeoutException
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                last = self._fail(problem, method, path, attempts=attempt + 1)
                if not idempotent and not isinstance(exc, httpx.ConnectError):
                    raise last from exc
            else:
                if response.is_success:
                    return response
                status = response.status_code
                last = self._http_error(response, method, path, attempt + 1)
                if not retryable(status) or (not idempotent and status != 429):
                    raise last
                wait_hint = retry_after(response)
            if attempt + 1 >= attempts:
                break
            wait = wait_hint if wait_hint is not None else self.backoff_s * 2**attempt
            wait = min(wait, MAX_WAIT_S)
            log.warning(
                f"{self.provider.lower()} request retry",
                method=method,
                path=path,
                status=status,
                error=None if status is not None else self._redact(str(last)),
                attempt=attempt + 1,
                max_attempts=attempts,
                wait_s=wait,
            )
            self._sleep(wait)
        assert last is not None
        plural = "s" if attempts != 1 else ""
        last.args = (f"{last} (gave up after {attempts} attempt{plural})",)
        last.attempts = attempts
        raise last
