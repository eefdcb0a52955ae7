"""What the Apify and Whop clients share: a Bearer-token httpx client with bounded retries.

429, 5xx, timeouts and connection errors are retried with exponential backoff, or after the
server's `Retry-After` when that is longer, each wait capped at MAX_WAIT_S (the policy of
`virtuna.retry`); other 4xx fail at once. A request that is not idempotent is retried only
when it surely was not processed: a 429 or a connection that never opened.
Errors name the method and path (never the query, which may carry secrets) and never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, cast

import httpx
import tenacity
from tenacity import RetryCallState

from virtuna.log import get_logger
from virtuna.retry import failure, retrying

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
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """Keep the details as attributes; the message is what str() shows."""
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.attempts = attempts
        self.retryable = retryable  # whether another attempt may succeed
        self.retry_after_s = retry_after_s  # how long the server asked us to wait


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
        policy = retrying(
            attempts=attempts,
            backoff=tenacity.wait_exponential(multiplier=self.backoff_s),
            max_wait_s=MAX_WAIT_S,
            on_retry=self._log_retry,
            sleep=self._sleep,
        )
        try:
            for attempt in policy:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return self._send(method, path, params, json, idempotent, number)
        except ProviderError as exc:
            if exc.retryable:  # it was worth another attempt, but none was left
                plural = "s" if attempts != 1 else ""
                exc.args = (f"{exc} (gave up after {attempts} attempt{plural})",)
                exc.attempts = attempts
            raise
        raise AssertionError("unreachable: the policy returns or raises the last error")

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        idempotent: bool,
        attempt: int,
    ) -> httpx.Response:
        """One attempt; its error says whether another attempt may succeed, and when."""
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:  # includes httpx.TimeoutException
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            error = self._fail(problem, method, path, attempts=attempt)
            # Sent again only if it surely was not processed: a connection that never opened.
            error.retryable = idempotent or isinstance(exc, httpx.ConnectError)
            raise error from exc
        if response.is_success:
            return response
        status = response.status_code
        error = self._http_error(response, method, path, attempt)
        error.retryable = retryable(status) and (idempotent or status == 429)
        error.retry_after_s = retry_after(response)
        raise error

    def _log_retry(self, state: RetryCallState) -> None:
        """Say which call is tried again, why, and after how long."""
        exc = cast(ProviderError, failure(state))  # the only error _send marks retryable
        log.warning(
            f"{self.provider.lower()} request retry",
            method=exc.method,
            path=exc.path,
            status=exc.status,
            error=None if exc.status is not None else self._redact(str(exc)),
            attempt=state.attempt_number,
            max_attempts=self.max_retries + 1,
            wait_s=state.upcoming_sleep,
        )
