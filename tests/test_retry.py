"""The retry policy: which errors are tried again, how often, how long it waits, what it raises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import tenacity

from virtuna.retry import async_retrying, jittered, retrying


class Flaky(Exception):
    """An error that says whether another attempt may succeed, and when."""

    def __init__(self, retryable: bool = True, retry_after_s: float | None = None) -> None:
        """A failure; retry_after_s is the server's hint."""
        super().__init__(f"flaky (retryable={retryable}, retry_after_s={retry_after_s})")
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def failing(*errors: Exception, result: str = "done") -> tuple[list[int], Callable[[], str]]:
    """A call that raises errors in turn, then returns result; and the list of its calls."""
    calls: list[int] = []

    def call() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return calls, call


def test_retryable_errors_are_tried_again_with_the_backoff() -> None:
    sleeps: list[float] = []
    calls, call = failing(Flaky(), Flaky())
    policy = retrying(
        attempts=3, backoff=tenacity.wait_exponential(multiplier=1), sleep=sleeps.append
    )
    assert policy(call) == "done"
    assert calls == [1, 2, 3] and sleeps == [1.0, 2.0]


def test_the_last_error_is_raised_as_itself_when_attempts_run_out() -> None:
    sleeps: list[float] = []
    last = Flaky()
    calls, call = failing(Flaky(), Flaky(), last)
    policy = retrying(attempts=3, backoff=tenacity.wait_fixed(0.5), sleep=sleeps.append)
    with pytest.raises(Flaky) as caught:
        policy(call)
    assert caught.value is last and calls == [1, 2, 3] and sleeps == [0.5, 0.5]


@pytest.mark.parametrize("error", [Flaky(retryable=False), ValueError("a bug")])
def test_other_errors_are_raised_at_once(error: Exception) -> None:
    sleeps: list[float] = []
    calls, call = failing(error)
    with pytest.raises(type(error)):
        retrying(attempts=5, backoff=tenacity.wait_fixed(1), sleep=sleeps.append)(call)
    assert calls == [1] and sleeps == []


def test_retry_on_decides_what_is_tried_again() -> None:
    calls, call = failing(KeyError("k"))
    policy = retrying(
        attempts=2,
        backoff=tenacity.wait_fixed(0),
        retry_on=lambda exc: isinstance(exc, KeyError),
        sleep=pytest.fail,
    )
    assert policy(call) == "done" and calls == [1, 2]


def test_it_waits_the_longer_of_backoff_and_retry_after_capped() -> None:
    sleeps: list[float] = []
    hints = (Flaky(retry_after_s=0.2), Flaky(retry_after_s=4.0), Flaky(retry_after_s=99.0))
    _, call = failing(*hints)
    policy = retrying(
        attempts=4, backoff=tenacity.wait_fixed(1), max_wait_s=10, sleep=sleeps.append
    )
    assert policy(call) == "done"
    assert sleeps == [1.0, 4.0, 10.0]


def test_an_immediate_retry_does_not_sleep_and_on_retry_sees_each_wait() -> None:
    seen: list[tuple[int, float]] = []
    _, call = failing(Flaky(), Flaky())
    policy = retrying(
        attempts=3,
        backoff=tenacity.wait_fixed(0),
        on_retry=lambda state: seen.append((state.attempt_number, state.upcoming_sleep)),
        sleep=pytest.fail,
    )
    assert policy(call) == "done"
    assert seen == [(1, 0.0), (2, 0.0)]


def test_jittered_waits_stay_within_half_and_one_and_a_half_steps() -> None:
    wait = jittered(0.002, 0.1)
    steps = [min(0.002 * 2**n, 0.1) for n in range(10)]
    for number, step in enumerate(steps, start=1):
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = number
        draws = [wait(state) for _ in range(200)]
        assert all(0.5 * step <= d <= 1.5 * step for d in draws)
        assert max(draws) - min(draws) > 0.5 * step  # spread out, not one fixed wait


def test_async_policy_awaits_the_injected_sleep() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> int:
        attempts = 0
        async for attempt in async_retrying(
            attempts=3, backoff=tenacity.wait_fixed(2), sleep=sleep
        ):
            with attempt:
                attempts += 1
                if attempts < 3:
                    raise Flaky(retry_after_s=3.0)
        return attempts

    assert asyncio.run(run()) == 3
    assert sleeps == [3.0, 3.0]
