"""Batch scoring without LLMs: many drafts at once, for notebooks and backtests.

Everything `predict` reads per request is read once here: the rule library, the Platt
parameters, and one set of trend tables per snapshot in force (drafts with different post
times use the snapshot of their own time). Rules, sound matching and aggregation then run per
draft in memory. The LLM signals are absent, so their weight is redistributed exactly as in
`predict` without providers; the tier-model signal is used when a model is active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from virtuna.engine.aggregate import aggregate
from virtuna.engine.calibrate import active_platt
from virtuna.engine.creator import creator_context
from virtuna.engine.ml import load_tier_signal
from virtuna.engine.normalize import normalize
from virtuna.engine.rules import load_active_rules, score_rules
from virtuna.engine.schema import AnalysisInput, describe_errors
from virtuna.engine.trends import TrendTables, load_trend_tables, score_trends
from virtuna.store import connect, utcnow

OUTPUT_COLUMNS = (
    "overall_score",
    "raw_score",
    "confidence",
    "confidence_label",
    "is_calibrated",
    "rule_score",
    "trend_score",
    "ml_score",
    "matched_rules",
    "matched_sounds",
    "weights",
    "error",
)


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
    rows: list[dict[str, Any]] = []
    tables: dict[datetime, TrendTables | str] = {}
    with connect(db_path) as con:
        rules = load_active_rules(con)
        platt = active_platt(con)
        tier = load_tier_signal(con)
        for record in frame.to_dict("records"):
            fields = {k: v for k, v in record.items() if k in AnalysisInput.model_fields}
            fields = {k: (None if _missing(v) else v) for k, v in fields.items()}
            try:
                payload = normalize(AnalysisInput.model_validate(fields))
            except ValidationError as exc:
                rows.append({"error": describe_errors(exc)})
                continue
            moment = payload.planned_post_time or default_moment
            if moment not in tables:
                tables[moment] = load_trend_tables(con, moment)
            trends = score_trends(tables[moment], payload.content_text, payload.hashtags)
            rules_result = score_rules(payload.content_text, rules, None)
            ml = None
            if tier.unavailable_reason is None:
                creator = creator_context(con, payload.creator_handle, moment)
                ml = tier.predict(con, payload, creator, moment)
            combined = aggregate(
                {
                    "rules": rules_result.rule_score,
                    "trends": trends.trend_score if trends.available else None,
                    "ml": ml.score if ml else None,
                },
                matched_sounds=len(trends.matched_sounds),
                matched_rules=len(rules_result.matched_names),
                platt=platt,
            )
            rows.append(
                {
                    "overall_score": combined.overall_score,
                    "raw_score": combined.raw_score,
                    "confidence": combined.confidence,
                    "confidence_label": combined.confidence_label,
                    "is_calibrated": combined.is_calibrated,
                    "rule_score": rules_result.rule_score,
                    "trend_score": trends.trend_score,
                    "ml_score": ml.score if ml else None,
                    "matched_rules": list(rules_result.matched_names),
                    "matched_sounds": [s["sound_name"] for s in trends.matched_sounds],
                    "weights": combined.weights,
                    "error": None,
                }
            )
    scores = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    return pd.concat([frame, scores], axis=1)


def _missing(value: Any) -> bool:
    """NaN/NaT/None from a DataFrame cell."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
