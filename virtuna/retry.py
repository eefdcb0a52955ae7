"""The one retry policy, for calls that may fail for a moment: an LLM provider, Apify or Whop, a
store write that lost a conflict to another transaction.

A call is made at most `attempts` times. Only an error that `retry_on` accepts is tried again (by
default one that says so in its `retryable` attribute); any other error, and the last one when
the attempts run out, is raised as itself, never wrapped. Before the next attempt it waits the
longer of the caller's backoff and what the server asked for (the error's `retry_after_s`), but
never longer than `max_wait_s`. The sleep is passed in, so tests record waits instead of waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tenacity
from tenacity import RetryCallState

Backoff = Callable[[RetryCallState], float]
OnRetry = Callable[[RetryCallState], None]


def retryable(exc: BaseException) -> bool:
    """Whether an error says another attempt may succeed."""
    return bool(getattr(exc, "retryable", False))


def failure(state: RetryCallState) -> BaseException:
    """The error of the attempt that just failed."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if exc is None:
        raise RuntimeError("no failed attempt to read")  # pragma: no cover - tenacity's contract
    return exc


def jittered(first_s: float, max_s: float) -> Backoff:
    """Exponential backoff from `first_s`, doubling up to `max_s`, each wait drawn from 50 % to
    150 % of its step (so that callers that collided once do not collide again)."""
    # Half the step plus a uniform draw from 0 to the step: the step times U(0.5, 1.5).
    return tenacity.wait_exponential(
        multiplier=first_s / 2, max=max_s / 2
    ) + tenacity.wait_random_exponential(multiplier=first_s, max=max_s)


def _policy(
    attempts: int,
    backoff: Backoff,
    retry_on: Callable[[BaseException], bool],
    max_wait_s: float,
    on_retry: OnRetry | None,
) -> dict[str, Any]:
    """The arguments of a tenacity controller that follows the policy."""

    def wait(state: RetryCallState) -> float:
        asked = getattr(failure(state), "retry_after_s", None) or 0.0
        return min(max(backoff(state), asked), max_wait_s)

    return {
        "stop": tenacity.stop_after_attempt(attempts),
        "retry": tenacity.retry_if_exception(retry_on),
        "wait": wait,
        "before_sleep": on_retry,
        "reraise": True,
    }


def retrying(
    *,
    attempts: int,
    backoff: Backoff,
    retry_on: Callable[[BaseException], bool] = retryable,
    max_wait_s: float = math.inf,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """The policy for a blocking call (`on_retry` runs before each wait)."""

    def nap(seconds: float) -> None:
        if seconds > 0:  # an immediate retry does not call sleep at all
            sleep(seconds)

    return tenacity.Retrying(
        sleep=nap, **_policy(attempts, backoff, retry_on, max_wait_s, on_retry)
    )


def async_retrying(
    *,
    attempts: int,
    backoff: Backoff,
    retry_on: Callable[[BaseException], bool] = retryable,
    max_wait_s: float = math.inf,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> tenacity.AsyncRetrying:
    """The policy for a coroutine; one controller per call, since it holds the call's state."""

    async def nap(seconds: float) -> None:
        if seconds > 0:  # an immediate retry does not call sleep at all
            await sleep(seconds)

    return tenacity.AsyncRetrying(
        sleep=nap, **_policy(attempts, backoff, retry_on, max_wait_s, on_retry)
    )
