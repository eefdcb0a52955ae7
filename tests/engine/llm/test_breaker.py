"""The circuit breaker (TEST-09, HARD-04): thresholds, backoff, the single half-open probe."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.engine.llm.conftest import FakeClock
from virtuna.engine.llm.breaker import CircuitBreaker, CircuitOpenError


class Boom(Exception):
    """A provider failure."""


class CallersFault(Exception):
    """A failure the caller caused (bad request)."""


async def fail() -> None:
    """A call that fails."""
    raise Boom("provider down")


async def succeed() -> str:
    """A call that succeeds."""
    return "ok"


async def open_breaker(breaker: CircuitBreaker) -> None:
    """Fail enough calls to open the breaker."""
    for _ in range(breaker.failure_threshold):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_starts_closed_and_passes_results_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    assert breaker.state == "closed"
    assert await breaker.call(succeed) == "ok"
    assert breaker.state == "closed"


async def test_opens_after_three_failed_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    for expected_failures in (1, 2):
        with pytest.raises(Boom):
            await breaker.call(fail)
        assert breaker.state == "closed"
        assert breaker.failures == expected_failures
    with capture_logs() as logs, pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state == "open"
    opened = [line for line in logs if line["event"] == "circuit breaker opened"]
    assert opened and opened[0]["log_level"] == "warning" and opened[0]["breaker"] == "test"


async def test_a_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    await breaker.call(succeed)
    assert breaker.failures == 0
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state == "closed"


async def test_open_refuses_without_calling_fn(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    clock.advance(0.5)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(counted)
    assert calls == 0
    assert info.value.name == "test"
    assert info.value.retry_in_s == pytest.approx(0.5)


async def test_half_open_after_backoff_and_success_closes_fully(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    clock.advance(1.0)
    assert breaker.state == "half-open"
    assert await breaker.call(succeed) == "ok"
    assert breaker.state == "closed"
    assert breaker.failures == 0
    # backoff index is back at 0: the next opening waits 1 s again
    await open_breaker(breaker)
    clock.advance(1.0)
    assert breaker.state == "half-open"


async def test_failed_probe_reopens_with_the_next_step(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    clock.advance(1.0)
    with pytest.raises(Boom):
        await breaker.call(fail)  # the probe fails
    assert breaker.state == "open"
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(succeed)  # still open at 1 s: the step is now 3 s
    clock.advance(2.0)
    assert breaker.state == "half-open"
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(3.0)
    assert breaker.state == "open"  # third step: 9 s
    clock.advance(6.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(8.9)
    assert breaker.state == "open"  # capped at the last step (9 s)
    clock.advance(0.1)
    assert breaker.state == "half-open"


async def test_fifty_concurrent_callers_at_half_open_send_one_probe(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    clock.advance(1.0)
    reached = 0

    async def provider() -> str:
        nonlocal reached
        reached += 1
        await asyncio.sleep(0.05)  # the callers overlap while the probe is in flight
        return "ok"

    results = await asyncio.gather(
        *(breaker.call(provider) for _ in range(50)), return_exceptions=True
    )
    assert reached == 1
    assert results.count("ok") == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 49
    assert breaker.state == "closed"


async def test_cancelling_the_probe_releases_the_in_flight_flag(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    clock.advance(1.0)
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    probe = asyncio.create_task(breaker.call(hangs))
    await started.wait()
    with pytest.raises(CircuitOpenError):
        await breaker.call(succeed)  # the probe is in flight
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half-open"
    assert await breaker.call(succeed) == "ok"  # the next caller becomes the probe
    assert breaker.state == "closed"


async def test_one_call_with_retries_inside_counts_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    attempts = 0

    async def request_with_three_retries() -> None:
        nonlocal attempts
        for _ in range(4):
            attempts += 1
        raise Boom("all 4 attempts failed")

    with pytest.raises(Boom):
        await breaker.call(request_with_three_retries)
    assert attempts == 4
    assert breaker.failures == 1
    assert breaker.state == "closed"


async def test_callers_fault_is_not_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)

    async def bad_request() -> None:
        raise CallersFault("400")

    for _ in range(5):
        with pytest.raises(CallersFault):
            await breaker.call(
                bad_request, is_failure=lambda exc: not isinstance(exc, CallersFault)
            )
    assert breaker.state == "closed"
    assert breaker.failures == 0


async def test_reset_closes_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("test", clock=clock)
    await open_breaker(breaker)
    breaker.reset()
    assert breaker.state == "closed"
    assert await breaker.call(succeed) == "ok"


def test_rejects_a_bad_configuration() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("test", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("test", backoff_s=())
