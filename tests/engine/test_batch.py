"""Batch scoring without LLMs: the same signals as predict, read once for many drafts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import END_OF_TRENDING_2025
from virtuna.config import load_settings
from virtuna.engine.batch import score_batch
from virtuna.engine.llm import Providers
from virtuna.engine.pipeline import Engine
from virtuna.jobs.calculate_trends import calculate_trends

WHEN = datetime(2025, 5, 25, 12)


@pytest.fixture
def trended(bundled_copy: Path) -> Path:
    calculate_trends(END_OF_TRENDING_2025, 48, db_path=str(bundled_copy))
    return bundled_copy


def test_batch_matches_predict_without_llms(trended: Path) -> None:
    import asyncio

    drafts = [
        {"content_text": "Wait for it... #fyp #cooking", "planned_post_time": WHEN},
        {"content_text": "my take on the ECE marketing airball #fyp", "planned_post_time": WHEN},
        {"content_text": "Stop making this mistake with your sourdough starter"},
    ]
    batch = score_batch(drafts, db_path=trended, as_of=WHEN)
    settings = load_settings()

    async def singles():
        engine = Engine(settings, db_path=trended, providers=Providers.from_settings(settings))
        async with engine:
            return [await engine.analyze(d, store=False, as_of=WHEN) for d in drafts]

    for row, single in zip(batch.to_dict("records"), asyncio.run(singles()), strict=True):
        assert row["rule_score"] == single.rule_score
        assert row["trend_score"] == single.trend_score
        assert row["overall_score"] == single.overall_score
    assert batch.loc[1, "matched_sounds"] == ["ECE Marketing Airball"]


def test_invalid_drafts_keep_their_row_with_the_reason(db_path: Path) -> None:
    frame = pd.DataFrame({"content_text": ["short", "A perfectly fine caption here", None]})
    out = score_batch(frame, db_path=db_path)
    assert len(out) == 3
    assert out.loc[0, "error"] == "content_text: must be at least 10 characters (after trimming)"
    assert pd.isna(out.loc[1, "error"]) and out.loc[1, "rule_score"] > 0
    assert "required when input_mode is text" in out.loc[2, "error"]
    assert pd.isna(out.loc[1, "trend_score"])  # no trend snapshot in an empty store
