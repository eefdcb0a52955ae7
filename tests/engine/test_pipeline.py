"""The pipeline end to end (TEST-10): fake Gemini, DeepSeek, Anthropic and OpenAI on
127.0.0.1, a real store.

The drafts are real captions from the bundled data; the LLMs are fakes answering in the
providers' wire formats, including their failures.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.conftest import END_OF_TRENDING_2025, RAW
from tests.fakes.llm import (
    FakeAnthropic,
    FakeDeepSeek,
    FakeGemini,
    FakeOpenAI,
    llm_settings,
    timeout_transport,
)
from virtuna import apredict, predict
from virtuna.engine.baseline import FALLBACK_BASELINE
from virtuna.engine.llm import Providers
from virtuna.engine.pipeline import Engine
from virtuna.jobs.calculate_trends import calculate_trends
from virtuna.store import connect

DRAFT = {
    "content_text": "Wait for it... the secret to crispy rice #cooking #fyp",
    "creator_handle": "chef_ana",
    "niche": "cooking",
}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeGemini, FakeDeepSeek]]:
    with FakeGemini() as gemini, FakeDeepSeek() as deepseek:
        yield gemini, deepseek


def _engine(
    db: Path, gemini: FakeGemini | None, deepseek: FakeDeepSeek | None, **overrides: object
) -> Engine:
    settings = llm_settings(gemini, deepseek, virtuna_db_path=str(db), **overrides)
    return Engine(
        settings,
        db_path=db,
        # The fakes decide which requests time out (`timeout()`), never the clock.
        providers=Providers.from_settings(settings, transport=timeout_transport(), sleep=_no_sleep),
        baseline=FALLBACK_BASELINE,
    )


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def _analyze(engine: Engine, data: dict | None = None, **kwargs: object):
    async def go():
        async with engine:
            return await engine.analyze(data or DRAFT, **kwargs)

    return asyncio.run(go())


def test_happy_path_uses_every_signal_and_stores_everything(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    result = _analyze(_engine(db_path, gemini, deepseek))
    assert result.gemini_score is not None and result.behavioral_score is not None
    assert result.rule_score is not None
    assert result.signals_available == {
        "behavioral": True,
        "gemini": True,
        "ml": False,
        "rules": True,
        "trends": False,
    }
    assert result.score_weights["ml"] == 0.0 and result.score_weights["behavioral"] > 0.35
    assert len(result.factors) == 5 and result.suggestions
    assert result.deepseek_model == "deepseek-reasoner"
    assert result.cost_cents > 0
    assert 0 <= result.overall_score <= 100 and not result.is_calibrated
    assert result.rules_evaluated > 12  # semantic rules were scored by the batched call
    assert deepseek.served == 2 and gemini.served == 1  # rules batch + reasoning; factors
    reasoning_prompt = deepseek.prompts[-1]
    assert "Creator" in reasoning_prompt and "Trend" in reasoning_prompt
    with connect(db_path) as con:
        stored = con.execute(
            "SELECT overall_score, ml_score, is_calibrated, rule_contributions, cost_cents, "
            "warnings FROM analysis_results WHERE id = ?",
            [result.analysis_id],
        ).fetchall()
        calls = con.execute(
            "SELECT provider, purpose, status, cost_cents FROM llm_calls WHERE analysis_id = ?",
            [result.analysis_id],
        ).fetchall()
    ((overall, ml_score, calibrated, contributions, cost, stored_warnings),) = stored
    assert overall == result.overall_score and ml_score is None and calibrated is False
    assert len(json.loads(contributions)) == result.rules_evaluated
    assert cost == result.cost_cents
    assert stored_warnings == result.warnings
    assert sorted(c[0] for c in calls) == ["deepseek", "deepseek", "gemini"]
    assert sum(c[3] for c in calls) == result.cost_cents


def test_deepseek_failure_falls_back_to_gemini(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    deepseek.ok(json.loads(json.dumps({"evaluations": []})))  # the rules batch answers
    deepseek.status(500, "Internal error", times=3)
    result = _analyze(_engine(db_path, gemini, deepseek))
    assert result.behavioral_score is not None
    assert result.deepseek_model == "gemini-2.5-flash"  # who really reasoned
    assert any("DeepSeek" in w for w in result.warnings)


def test_gemini_failure_falls_back_down_the_content_order(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    gemini.status(503, "The model is overloaded.", times=3)
    result = _analyze(_engine(db_path, gemini, deepseek))
    assert len(result.factors) == 5 and result.gemini_model == "deepseek-reasoner"
    assert any("answered by the DeepSeek fallback" in w for w in result.warnings)


def test_gemini_failure_without_a_fallback_degrades_with_a_warning(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    gemini.status(503, "The model is overloaded.", times=3)
    result = _analyze(_engine(db_path, gemini, deepseek, llm_content_order="gemini"))
    assert result.gemini_score is None and result.factors == []
    assert result.score_weights["gemini"] == 0.0
    assert result.behavioral_score is not None
    assert any("Gemini" in w for w in result.warnings)


def test_gemini_and_deepseek_down_claude_answers_every_role(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    gemini.status(500, "An internal error has occurred.", times=20)
    deepseek.status(503, "Server overloaded, please try again later.", times=20)
    with FakeAnthropic() as claude:
        result = _analyze(_engine(db_path, gemini, deepseek, anthropic=claude))
        served = claude.served
    assert len(result.factors) == 5 and result.gemini_score is not None
    assert result.behavioral_score is not None and result.suggestions
    assert result.confidence_label != "LOW"
    assert (result.gemini_model, result.deepseek_model) == ("claude-haiku-5-5",) * 2
    assert served == 3  # content factors, semantic rules, behavioural reasoning
    assert any(
        "answered by the Anthropic fallback (claude-haiku-5-5)" in w for w in result.warnings
    )
    with connect(db_path) as con:
        answered = con.execute(
            "SELECT provider, model, purpose, cost_cents FROM llm_calls "
            "WHERE analysis_id = ? AND status = 'ok' ORDER BY purpose",
            [result.analysis_id],
        ).fetchall()
        total = con.execute(
            "SELECT sum(cost_cents) FROM llm_calls WHERE analysis_id = ?", [result.analysis_id]
        ).fetchone()[0]
    assert [(p, m, purpose) for p, m, purpose, _ in answered] == [
        ("anthropic", "claude-haiku-5-5", "behavioral-reasoning"),
        ("anthropic", "claude-haiku-5-5", "content-analysis"),
        ("anthropic", "claude-haiku-5-5", "rule-evaluation"),
    ]
    assert all(cost > 0 for *_, cost in answered)
    assert total == result.cost_cents


def test_both_llms_down_is_a_partial_low_confidence_result(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    gemini.status(500, times=20)
    deepseek.status(500, times=20)
    result = _analyze(_engine(db_path, gemini, deepseek))
    assert (result.gemini_score, result.behavioral_score) == (None, None)
    assert (result.confidence, result.confidence_label) == (0.2, "LOW")
    assert result.rule_score is not None
    assert result.score_weights == {
        "behavioral": 0.0,
        "gemini": 0.0,
        "ml": 0.0,
        "rules": 1.0,
        "trends": 0.0,
    }
    assert any("Both LLM signals unavailable" in w for w in result.warnings)


def test_unconfigured_llms_say_so_and_weights_are_redistributed(db_path: Path) -> None:
    result = _analyze(_engine(db_path, None, None))
    content, reasoning = (
        next(w for w in result.warnings if w.startswith(f"{first} not configured"))
        for first in ("Gemini", "DeepSeek")
    )
    # every provider of the role's order is named as skipped
    assert content == (
        "Gemini not configured (GEMINI_API_KEY); "
        "no Anthropic fallback (ANTHROPIC_API_KEY not configured); "
        "no OpenAI fallback (OPENAI_API_KEY not configured); "
        "no DeepSeek fallback (DEEPSEEK_API_KEY not configured)"
    )
    assert "no Gemini fallback (GEMINI_API_KEY not configured)" in reasoning
    assert any(w.startswith("Weights redistributed") for w in result.warnings)
    assert result.cost_cents == 0


def test_invalid_input_raises_naming_the_field(db_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _analyze(_engine(db_path, None, None), {"content_text": "too short"})
    assert info.value.errors()[0]["loc"] == ("content_text",)


def test_a_failing_store_stage_degrades_instead_of_crashing(tmp_path: Path) -> None:
    broken = tmp_path / "not-a-dir" / "x.duckdb"
    broken.parent.write_text("a file where a folder should be", encoding="utf-8")
    result = _analyze(_engine(broken, None, None), store=False)
    assert any(w.startswith("Store context unavailable") for w in result.warnings)
    assert result.rule_score is None


def test_trends_signal_on_real_data_as_of_its_time(bundled_copy: Path) -> None:
    calculate_trends(END_OF_TRENDING_2025, 48, db_path=str(bundled_copy))
    with connect(bundled_copy) as con:
        (handle,) = con.execute(
            "SELECT author_handle FROM scraped_videos WHERE source = 'trending_csv' "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchall()[0]
    data = {
        "content_text": "Wait for it... #fyp #cooking",
        "creator_handle": handle,
        "planned_post_time": datetime(2025, 5, 25, 12),
    }
    result = _analyze(_engine(bundled_copy, None, None), data)
    assert result.signals_available["trends"] and result.signals_available["rules"]
    assert result.creator["found"] and result.creator["earlier_posts"] > 0
    assert result.trend_score is not None and result.trend_score > 0  # #fyp is trending
    assert result.score_weights["trends"] > 0.1 and result.score_weights["gemini"] == 0.0


def test_predict_and_apredict_public_api(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTUNA_DB_PATH", str(db_path))
    from virtuna.config import get_settings

    get_settings.cache_clear()
    result = predict("Stop scrolling: the one mistake everyone makes #cooking")
    assert result.rule_score is not None and result.input_mode == "text"
    again = asyncio.run(apredict("Stop scrolling: the one mistake everyone makes", store=False))
    assert again.analysis_id != result.analysis_id

    async def inside_a_running_loop():
        return predict("Stop scrolling: the one mistake everyone makes")

    assert asyncio.run(inside_a_running_loop()).rule_score is not None  # as in Jupyter


def test_thousand_analyses_with_random_faults_all_return(
    fakes: tuple[FakeGemini, FakeDeepSeek], db_path: Path
) -> None:
    gemini, deepseek = fakes
    rng = random.Random(7)
    lines = (RAW / "tiktok_apify_2023_sample.jsonl").read_text(encoding="utf-8").splitlines()
    captions = [c for c in (json.loads(line)["text"] for line in lines) if len(c.strip()) >= 10]
    # About one answer in three is a fault; retries, the fallbacks and the breakers absorb
    # some, the rest must degrade the result, never break it.
    faults = ["ok"] * 8 + ["fenced", "status", "blank", "invalid", "timeout", "malformed"]
    with FakeAnthropic() as claude, FakeOpenAI() as gpt:
        for fake in (gemini, deepseek, claude, gpt):
            for _ in range(3000):
                kind = rng.choice(faults)
                if kind == "ok":
                    fake.answer()
                elif kind == "fenced":
                    fake.fenced(None)
                elif kind == "status":
                    fake.status(rng.choice([429, 500, 503, 529 if fake is claude else 502]))
                elif kind == "blank":
                    fake.blank()
                elif kind == "invalid":
                    fake.invalid()
                elif kind == "timeout":
                    fake.timeout()
                elif kind == "malformed":
                    fake.malformed()
        engine = _engine(
            db_path,
            gemini,
            deepseek,
            anthropic=claude,
            openai=gpt,
            **{
                f"{name}_timeout_s": 600.0 for name in ("gemini", "deepseek", "anthropic", "openai")
            },
            llm_max_retries=1,
            breaker_backoff_s="0.05,0.1,0.2",
        )
        results = _run_thousand(engine, captions)
        answered = Counter(r.deepseek_model for r in results)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    labels = Counter(r.confidence_label for r in results)
    degraded = [r for r in results if r.gemini_score is None or r.behavioral_score is None]
    both_down = [r for r in results if r.gemini_score is None and r.behavioral_score is None]
    print(
        f"\n1000 analyses: {len(degraded)} degraded, {len(both_down)} with both LLMs down, "
        f"confidence {dict(labels)}, reasoning answered by {dict(answered)}"
    )
    assert all(r.warnings for r in degraded)
    assert all((r.confidence, r.confidence_label) == (0.2, "LOW") for r in both_down)
    assert len(degraded) < 1000
    # every fallback provider answered some reasoning
    assert {"deepseek-reasoner", "gemini-2.5-flash", "claude-haiku-5-5", "gpt-6-luna"} <= set(
        answered
    )


def _run_thousand(engine: Engine, captions: list[str]) -> list[object]:
    """1,000 analyses, 25 at a time, exceptions returned rather than raised."""

    async def run_all():
        limit = asyncio.Semaphore(25)

        async def one(i: int):
            async with limit:
                return await engine.analyze(
                    {"content_text": captions[i % len(captions)]}, store=False
                )

        async with engine:
            return await asyncio.gather(*(one(i) for i in range(1000)), return_exceptions=True)

    return asyncio.run(run_all())
