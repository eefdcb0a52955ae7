"""Batch scoring without LLMs: many drafts at once, for notebooks and backtests.

Everything `predict` reads per request is read once here: the rule library, the calibration
maps, and one set of trend tables per snapshot in force (drafts with different post
times use the snapshot of their own time). Rules, sound matching and aggregation then run per
draft in memory. The LLM signals are absent, so their weight is redistributed exactly as in
`predict` without providers; the tier-model signal is used when a model is active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from pydantic import ValidationError

from virtuna.engine.aggregate import aggregate
from virtuna.engine.calibrate import active_calibrations
from virtuna.engine.normalize import normalize
from virtuna.engine.rules import load_active_rules, score_rules
from virtuna.engine.schema import AnalysisInput, ContentPayload, describe_errors
from virtuna.engine.trends import TrendTables, load_trend_tables, score_trends
from virtuna.ml.signal import MLPrediction, TierModelSignal, load_tier_signal
from virtuna.store import connect, utcnow
from virtuna.store.trends import snapshot_as_of

OUTPUT_COLUMNS = (
    "overall_score",
    "raw_score",
    "signal_profile",
    "score_target",
    "resonates_at_views",
    "confidence",
    "confidence_label",
    "is_calibrated",
    "calibration_version",
    "rule_score",
    "trend_score",
    "ml_score",
    "matched_rules",
    "matched_sounds",
    "rule_contributions",
    "weights",
    "error",
)


def score_payloads(
    con: duckdb.DuckDBPyConnection,
    payloads: Sequence[ContentPayload],
    moments: Sequence[datetime],
    ml: Sequence[MLPrediction | None],
) -> list[dict[str, Any]]:
    """Scores of normalised drafts, each as of its moment, with the given ML predictions."""
    rules = load_active_rules(con)
    calibrations = active_calibrations(con)
    tables: dict[datetime | None, TrendTables | str] = {}
    out = []
    for payload, moment, prediction in zip(payloads, moments, ml, strict=True):
        found = snapshot_as_of(con, moment)
        key = found[0] if found else None
        if key not in tables or isinstance(tables[key], str):
            tables[key] = load_trend_tables(con, moment)
        trends = score_trends(tables[key], payload.content_text, payload.hashtags)
        rule_result = score_rules(payload.content_text, rules, None)
        combined = aggregate(
            {
                "rules": rule_result.rule_score,
                "trends": trends.trend_score if trends.available else None,
                "ml": prediction.score if prediction else None,
            },
            matched_sounds=len(trends.matched_sounds),
            matched_rules=len(rule_result.matched_names),
            target=prediction.target if prediction else "reference_tier",
            calibrations=calibrations,
        )
        out.append(
            {
                "overall_score": combined.overall_score,
                "raw_score": combined.raw_score,
                "signal_profile": combined.signal_profile,
                "score_target": combined.target,
                "resonates_at_views": prediction.resonates_at_views if prediction else None,
                "confidence": combined.confidence,
                "confidence_label": combined.confidence_label,
                "is_calibrated": combined.is_calibrated,
                "calibration_version": combined.calibration_version,
                "rule_score": rule_result.rule_score,
                "trend_score": trends.trend_score,
                "ml_score": prediction.score if prediction else None,
                "matched_rules": list(rule_result.matched_names),
                "matched_sounds": [s["sound_name"] for s in trends.matched_sounds],
                "rule_contributions": [c.as_dict() for c in rule_result.contributions],
                "weights": combined.weights,
                "error": None,
            }
        )
    return out


def score_batch(
    drafts: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    db_path: Path | str | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Score drafts (AnalysisInput fields as columns) with rules, trends and the tier model.

    Each draft is scored as of its `planned_post_time`, else `as_of`, else now. A draft that
    fails validation gets its error in the `error` column and no scores; nothing is dropped.
    """
    frame = (
        drafts.reset_index(drop=True)
        if isinstance(drafts, pd.DataFrame)
        else pd.DataFrame(list(drafts))
    )
    default_moment = as_of or utcnow()
    errors: dict[int, str] = {}
    valid: list[tuple[int, ContentPayload, datetime]] = []
    for position, record in enumerate(frame.to_dict("records")):
        fields = {k: (None if _missing(v) else v) for k, v in record.items()}
        fields = {k: v for k, v in fields.items() if k in AnalysisInput.model_fields}
        try:
            payload = normalize(AnalysisInput.model_validate(fields))
        except ValidationError as exc:
            errors[position] = describe_errors(exc)
            continue
        valid.append((position, payload, payload.planned_post_time or default_moment))
    with connect(db_path) as con:
        tier = load_tier_signal(con)
        payloads = [payload for _, payload, _ in valid]
        moments = [moment for _, _, moment in valid]
        predictions: list[MLPrediction | None] = (
            list(tier.predict_many(con, payloads, moments))
            if isinstance(tier, TierModelSignal) and valid
            else [None] * len(valid)
        )
        scored = score_payloads(con, payloads, moments, predictions)
    rows: list[dict[str, Any]] = [{"error": errors.get(i)} for i in range(len(frame))]
    for (position, _, _), result in zip(valid, scored, strict=True):
        rows[position] = result
    scores = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    return pd.concat([frame, scores], axis=1)


def _missing(value: Any) -> bool:
    """NaN/NaT/None from a DataFrame cell."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
