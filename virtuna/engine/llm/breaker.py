"""An asyncio circuit breaker: closed -> open after N failed calls -> one half-open probe.

One `call` is one request however many retries run inside it, so it counts as at most one
failure (the original counted every attempt). While open, callers fail at once with
`CircuitOpenError`. Once the backoff has passed, the FIRST caller becomes the probe: the
in-flight flag is set before any await and released in `finally`, so concurrent callers are
refused and a cancelled probe never wedges the breaker. A successful call closes the breaker
fully; a failed probe reopens it with the next backoff step (capped at the last one).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import sentry_sdk

from virtuna.log import get_logger

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half-open"]

log = get_logger(__name__)


class CircuitOpenError(Exception):
    """The breaker refused the call without running it."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        """Refused by breaker `name`; a probe is allowed in retry_in_s seconds (0: one runs)."""
        self.name = name
        self.retry_in_s = max(retry_in_s, 0.0)
        super().__init__(f"{name} circuit breaker is open; retry in {self.retry_in_s:.1f} s")


def _always(exc: BaseException) -> bool:
    """Every exception counts as a failure."""
    return True


class CircuitBreaker:
    """Per-provider breaker; safe for any number of concurrent callers on one event loop."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        backoff_s: Sequence[float] = (1, 3, 9),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A closed breaker opening after failure_threshold consecutive failed calls."""
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not backoff_s or any(step < 0 for step in backoff_s):
            raise ValueError("backoff_s needs at least one non-negative step")
        self.name = name
        self.failure_threshold = failure_threshold
        self.backoff_s = tuple(float(step) for step in backoff_s)
        self._clock = clock
        self.reset(log_it=False)

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> BreakerState:
        """closed; open (waiting out the backoff); half-open (probe due or running)."""
        if not self._open:
            return "closed"
        if self._probe_in_flight or self._clock() >= self._retry_at:
            return "half-open"
        return "open"

    @property
    def failures(self) -> int:
        """Consecutive failed calls counted while closed."""
        return self._failures

    @property
    def retry_in_s(self) -> float:
        """Seconds until a probe is allowed (0 when closed or due)."""
        return max(self._retry_at - self._clock(), 0.0) if self._open else 0.0

    def reset(self, *, log_it: bool = True) -> None:
        """Close fully: no failures, first backoff step next time, no probe in flight."""
        was_open = getattr(self, "_open", False)
        self._open = False
        self._failures = 0
        self._backoff_index = 0
        self._retry_at = 0.0
        self._probe_in_flight = False
        if log_it and was_open:
            self._transition("closed", level="info")

    # ------------------------------------------------------------------ calls

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        is_failure: Callable[[BaseException], bool] = _always,
    ) -> T:
        """Run fn through the breaker; exceptions for which is_failure is False don't count."""
        probe = self._admit()
        try:
            result = await fn()
        except Exception as exc:
            if is_failure(exc):
                self._record_failure(probe, exc)
            raise
        finally:
            if probe:
                self._probe_in_flight = False
        self._record_success(probe)
        return result

    def _admit(self) -> bool:
        """Raise CircuitOpenError unless the call may run; True when it is the probe."""
        if not self._open:
            return False
        now = self._clock()
        if self._probe_in_flight or now < self._retry_at:
            raise CircuitOpenError(self.name, self._retry_at - now)
        self._probe_in_flight = True  # synchronously, before the caller's first await
        self._transition("half-open", level="info")
        return True

    def _record_failure(self, probe: bool, exc: BaseException) -> None:
        """Count a failed call; open the breaker at the threshold, reopen after a failed probe."""
        error = f"{type(exc).__name__}: {exc}"[:300]
        if probe and self._open:
            self._backoff_index = min(self._backoff_index + 1, len(self.backoff_s) - 1)
            self._open_now(error)
        elif not self._open:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open_now(error)
        # A call admitted while closed that fails after the breaker opened changes nothing.

    def _record_success(self, probe: bool) -> None:
        """Any successful call closes the breaker fully."""
        if self._open or self._failures or self._backoff_index:
            was_open = self._open
            self._open = False
            self._failures = 0
            self._backoff_index = 0
            self._retry_at = 0.0
            if was_open:
                self._transition("closed", level="info", probe=probe)

    def _open_now(self, error: str) -> None:
        """Open (or reopen) with the current backoff step."""
        wait = self.backoff_s[self._backoff_index]
        self._open = True
        self._retry_at = self._clock() + wait
        self._transition(
            "open", level="warning", retry_in_s=wait, failures=self._failures, error=error
        )

    def _transition(self, state: str, *, level: str, **fields: object) -> None:
        """Log a state change and leave a Sentry breadcrumb."""
        data = {"breaker": self.name, "state": state, **fields}
        if level == "warning":
            log.warning("circuit breaker opened", **data)
        else:
            log.info(f"circuit breaker {state}", **data)
        sentry_sdk.add_breadcrumb(
            category="engine.breaker",
            message=f"{self.name} breaker {state}",
            level=level,
            data=data,
        )
