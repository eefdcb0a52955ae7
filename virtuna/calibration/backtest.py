"""Backtest: replay held-out real videos as if they were about to be posted.

The active tier model's held-out rows (recorded in its card; it never trained on them) are
scored with the point-in-time features of their post time, the rule library and the trends in
force then, without LLMs (they cost money and do not answer for 2020's posts). Each replay is
stored as an analysis marked `is_backtest`, with the video's real outcome as its outcome, so
calibration rests on real data without waiting for users to report.

What the score means: overall_score / 100 is meant as the probability that the post lands in
tier 4 or 5 of the tier scheme ("resonates"). A backtest outcome records the actual tier (the
model's tier edges applied to the real views) and an actual score: the real views' percentile
(0-100) among the training population.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from virtuna.engine.batch import score_payloads
from virtuna.engine.ml import MLPrediction
from virtuna.engine.pipeline import ENGINE_VERSION
from virtuna.engine.schema import ContentPayload
from virtuna.log import get_logger, stage
from virtuna.ml.features import build_features, training_rows
from virtuna.ml.registry import active_model_id, load_model
from virtuna.ml.tiers import ml_score
from virtuna.store import connect, run, transaction, utcnow

log = get_logger(__name__)
RESONATES_FROM_TIER = 4


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest stored."""

    run_id: str
    model_id: str
    analyses: int
    resonating_share: float


def run_backtest(
    *, db_path: Path | str | None = None, limit: int | None = None, seed: int = 0
) -> BacktestResult:
    """Replay the active model's held-out videos and store analyses with their outcomes."""
    from virtuna.config import get_settings

    db = db_path if db_path is not None else get_settings().virtuna_db_path
    run_id = f"backtest-{utcnow():%Y%m%dT%H%M%S}"
    with stage("backtest") as current, connect(db) as con:
        model_id = active_model_id(con)
        if model_id is None:
            raise LookupError("no active tier model: run retrain-ml before a backtest")
        model = load_model(con, model_id)
        held_out = set(model.card["training"].get("test_row_ids", []))
        if not held_out:
            raise LookupError(f"model {model_id} records no held-out rows to replay")
        everything = training_rows(con)
        rows = everything[everything["row_id"].isin(held_out)].reset_index(drop=True)
        if limit is not None and len(rows) > limit:
            rows = rows.sample(n=limit, random_state=seed).reset_index(drop=True)
        features = build_features(con, rows)
        full = model.predict_proba(features)
        ml = [
            MLPrediction(
                round(float(s), 2), [round(float(p), 4) for p in probs], model_id, model.kind
            )
            for s, probs in zip(ml_score(full), full, strict=True)
        ]
        payloads = [
            ContentPayload(
                content_text=str(r.description or ""),
                content_type="video",
                input_mode="text",
                video_url=None,
                hashtags=list(r.hashtags) if r.hashtags is not None else [],
                duration_hint=None if pd.isna(r.duration_seconds) else float(r.duration_seconds),
                niche=None,
                creator_handle=str(r.author_key),
                planned_post_time=r.posted_at,
            )
            for r in rows.itertuples()
        ]
        scores = score_payloads(con, payloads, list(rows["posted_at"]), ml)
        log_views = np.log1p(rows["views"].to_numpy(dtype=float))
        reference = np.sort(np.log1p(everything["views"].to_numpy(dtype=float)))
        percentile = np.searchsorted(reference, log_views, side="right") / len(reference) * 100
        tiers = model.edges.assign(log_views)
        _store(con, run_id, rows, scores, percentile, tiers, model_id)
        share = float(np.mean(tiers >= RESONATES_FROM_TIER))
        current.fields.update(analyses=len(rows), model_id=model_id)
    log.info("backtest stored", run_id=run_id, analyses=len(rows), resonating_share=share)
    return BacktestResult(run_id, model_id, len(rows), share)


def _store(con, run_id, rows, scores, percentile, tiers, model_id) -> None:  # type: ignore[no-untyped-def]
    analyses = pd.DataFrame(
        {
            "id": [str(uuid.uuid4()) for _ in range(len(rows))],
            "request_id": run_id,
            "input_mode": "text",
            "content_text": rows["description"].fillna(""),
            "creator_handle": rows["author_key"],
            "planned_post_time": rows["posted_at"],
            "overall_score": [s["overall_score"] for s in scores],
            "raw_score": [s["raw_score"] for s in scores],
            "confidence": [s["confidence"] for s in scores],
            "confidence_label": [s["confidence_label"] for s in scores],
            "is_calibrated": [s["is_calibrated"] for s in scores],
            "rule_score": [s["rule_score"] for s in scores],
            "trend_score": [s["trend_score"] for s in scores],
            "ml_score": [s["ml_score"] for s in scores],
            "ml_model_id": model_id,
            "score_weights": [json.dumps(s["weights"]) for s in scores],
            "rule_contributions": [json.dumps(s["rule_contributions"]) for s in scores],
            "rules_evaluated": [len(s["rule_contributions"]) for s in scores],
            "engine_version": ENGINE_VERSION,
            "source_video_id": rows["row_id"],
            "created_at": rows["posted_at"],
        }
    )
    outcomes = pd.DataFrame(
        {
            "id": [str(uuid.uuid4()) for _ in range(len(rows))],
            "analysis_id": analyses["id"],
            "actual_views": rows["views"],
            "actual_likes": rows["likes"],
            "actual_shares": rows["shares"],
            "actual_comments": rows["comments"],
            "actual_score": np.round(percentile, 2),
            "actual_tier": tiers,
            "predicted_score": analyses["overall_score"],
            "delta": np.round(percentile - analyses["overall_score"], 2),
            "reported_at": rows["posted_at"],
        }
    )
    with transaction(con):
        con.register("_analyses", analyses)
        con.register("_outcomes", outcomes)
        try:
            columns = ", ".join(analyses.columns)
            run(
                con,
                f"INSERT INTO analysis_results ({columns}, is_backtest, cost_cents) "
                f"SELECT {columns}, TRUE, 0 FROM _analyses",
            )
            columns = ", ".join(outcomes.columns)
            run(
                con,
                f"INSERT INTO outcomes ({columns}, platform, source, created_at) "
                f"SELECT {columns}, 'tiktok', 'backtest', now()::TIMESTAMP FROM _outcomes",
            )
        finally:
            con.unregister("_analyses")
            con.unregister("_outcomes")
