"""analysis_results and llm_calls: every prediction with every field, every LLM request."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from virtuna.store.connection import utcnow
from virtuna.store.writer import Rows


@dataclass(frozen=True)
class LLMCallRow:
    """One LLM request as stored in llm_calls."""

    id: str
    provider: str
    model: str
    purpose: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    thinking_tokens: int
    cost_cents: Decimal | None  # None: the reply had no usage, so the cost is unknown
    latency_ms: float | None
    status: str
    error: str | None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


ANALYSIS_COLUMNS = (
    "id", "request_id", "user_id", "input_mode", "content_text", "content_type", "niche",
    "creator_handle", "video_url", "hashtags", "planned_post_time", "overall_score",
    "raw_score", "confidence", "confidence_label", "is_calibrated", "calibration_version",
    "rule_score", "trend_score", "gemini_score", "behavioral_score", "ml_score", "ml_model_id",
    "score_weights", "factors", "suggestions", "behavioral_predictions", "feature_vector",
    "rule_contributions", "rules_evaluated", "warnings", "stage_timings", "cost_cents",
    "latency_ms", "engine_version", "gemini_model", "deepseek_model", "has_video",
    "is_backtest", "source_video_id", "created_at", "signal_profile", "score_target",
    "resonates_at_views",
)  # fmt: skip
LLM_CALL_COLUMNS = (
    "id", "request_id", "analysis_id", "provider", "model", "purpose", "input_tokens",
    "cached_tokens", "output_tokens", "thinking_tokens", "cost_cents", "latency_ms", "status",
    "error", "created_at",
)  # fmt: skip


def analysis_rows(
    result: dict[str, Any],
    *,
    content_text: str,
    content_type: str,
    niche: str | None,
    creator_handle: str | None,
    video_url: str | None,
    hashtags: list[str],
    planned_post_time: datetime | None,
    user_id: str | None = None,
    is_backtest: bool = False,
    source_video_id: str | None = None,
    created_at: datetime | None = None,
) -> Rows:
    """One prediction (a PredictionResult as a dict) with its input, as a row to insert."""
    values = (
        result["analysis_id"],
        result["request_id"],
        user_id,
        result["input_mode"],
        content_text,
        content_type,
        niche,
        creator_handle,
        video_url,
        hashtags,
        planned_post_time,
        result["overall_score"],
        result["raw_score"],
        result["confidence"],
        result["confidence_label"],
        result["is_calibrated"],
        result.get("calibration_version"),
        result["rule_score"],
        result["trend_score"],
        result["gemini_score"],
        result["behavioral_score"],
        result["ml_score"],
        result.get("ml_model_id"),
        _json(result["score_weights"]),
        _json(result["factors"]),
        _json(result["suggestions"]),
        _json(result["behavioral_predictions"]),
        _json(result["feature_vector"]),
        _json(result["rule_contributions"]),
        result["rules_evaluated"],
        result["warnings"],
        _json(result["stage_timings"]),
        result["cost_cents"],
        result["latency_ms"],
        result["engine_version"],
        result["gemini_model"],
        result["deepseek_model"],
        result["has_video"],
        is_backtest,
        source_video_id,
        created_at or utcnow(),
        result.get("signal_profile"),
        result.get("score_target"),
        result.get("resonates_at_views"),
    )
    return Rows("analysis_results", ANALYSIS_COLUMNS, [values])


def save_analysis(con: duckdb.DuckDBPyConnection, result: dict[str, Any], **fields: Any) -> None:
    """Store one prediction (a PredictionResult as a dict) with its input (`analysis_rows`)."""
    analysis_rows(result, **fields)(con)


def llm_call_rows(
    calls: Iterable[LLMCallRow], *, request_id: str | None, analysis_id: str | None
) -> Rows:
    """LLM requests (exact costs) as rows to insert."""
    now = utcnow()
    return Rows(
        "llm_calls",
        LLM_CALL_COLUMNS,
        [
            (
                c.id,
                request_id,
                analysis_id,
                c.provider,
                c.model,
                c.purpose,
                c.input_tokens,
                c.cached_tokens,
                c.output_tokens,
                c.thinking_tokens,
                c.cost_cents,
                c.latency_ms,
                c.status,
                c.error,
                now,
            )
            for c in calls
        ],
    )


def save_llm_calls(
    con: duckdb.DuckDBPyConnection,
    calls: Iterable[LLMCallRow],
    *,
    request_id: str | None,
    analysis_id: str | None,
) -> int:
    """Store LLM requests (exact costs); returns how many."""
    rows = llm_call_rows(calls, request_id=request_id, analysis_id=analysis_id)
    rows(con)
    return len(rows.values)
