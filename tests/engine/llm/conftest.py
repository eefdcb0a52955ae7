"""Fixtures for the LLM tests: the four fake providers, a draft, a baseline, clocks and sleeps.

`async def` tests in this folder run in a fresh event loop each (asyncio.run), so no async
plugin is needed.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from tests.fakes import llm as llm_fakes
from virtuna.engine.baseline import CalibrationBaseline, Differentiator, Percentiles
from virtuna.engine.llm import DeepSeekReasoning, Task, reasoning_task
from virtuna.engine.schema import ContentPayload

fake_gemini = llm_fakes.fake_gemini
fake_deepseek = llm_fakes.fake_deepseek
fake_anthropic = llm_fakes.fake_anthropic
fake_openai = llm_fakes.fake_openai


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run coroutine test functions with asyncio.run."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = inspect.signature(pyfuncitem.obj).parameters
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


class Sleeps(list[float]):
    """An injectable async sleep that records the waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        """Record seconds and yield to the loop once."""
        self.append(seconds)
        await asyncio.sleep(0)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        """Start at now."""
        self.now = now

    def __call__(self) -> float:
        """The current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture
def sleeps() -> Sleeps:
    """A fresh sleep recorder."""
    return Sleeps()


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


def make_payload(**overrides: Any) -> ContentPayload:
    """A normalised text draft."""
    values: dict[str, Any] = {
        "content_text": "Wait for it... the one pasta trick nobody told you #cooking #pasta",
        "content_type": "video",
        "input_mode": "text",
        "video_url": None,
        "hashtags": ["cooking", "pasta"],
        "duration_hint": 28.0,
        "niche": "home cooking",
        "creator_handle": "chef_ana",
        "planned_post_time": None,
    }
    values.update(overrides)
    return ContentPayload(**values)


@pytest.fixture
def payload() -> ContentPayload:
    """A normalised text draft in the home-cooking niche."""
    return make_payload()


@pytest.fixture
def baseline() -> CalibrationBaseline:
    """A measured baseline with distinctive numbers the prompts must quote."""
    return CalibrationBaseline(
        video_count=7321,
        share_rate=Percentiles(p50=0.0028, p75=0.0074, p90=0.0183),
        comment_rate=Percentiles(p50=0.0011, p75=0.0025, p90=0.0052),
        save_rate=Percentiles(p50=0.0019, p75=0.0048, p90=0.0111),
        weighted_engagement=Percentiles(p50=0.0954, p75=0.1596, p90=0.2397),
        duration_sweet_spot=(12.0, 34.0),
        differentiators=[
            Differentiator(
                name="share_rate", viral_median=0.021, average_median=0.004, difference_pct=425
            ),
            Differentiator(
                name="comment_rate", viral_median=0.006, average_median=0.002, difference_pct=200
            ),
            Differentiator(
                name="duration_seconds", viral_median=22, average_median=31, difference_pct=-29
            ),
            Differentiator(
                name="caption_length", viral_median=60, average_median=64, difference_pct=-6
            ),
            Differentiator(
                name="save_rate", viral_median=0.009, average_median=0.003, difference_pct=150
            ),
            Differentiator(
                name="like_rate", viral_median=0.11, average_median=0.08, difference_pct=38
            ),
        ],
    )


def bare_reasoning_task(
    payload: ContentPayload, baseline: CalibrationBaseline
) -> Task[DeepSeekReasoning]:
    """The reasoning task without Gemini's reading, rules, trends or creator context."""
    return reasoning_task(
        payload, gemini=None, rule_names=[], trend_context="", creator_context="", baseline=baseline
    )
