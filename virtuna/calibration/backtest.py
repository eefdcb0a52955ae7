"""Backtest: replay held-out real videos as if they were about to be posted.

The active tier models' held-out rows (the absolute model's card records them) are replayed
through the batch engine path: point-in-time features of their post time, the rule library and
the trends in force then, without LLMs (they cost money and do not answer for 2020's posts), so
each replay's signal profile is what was available then. The served models were refitted on
every row, held-out ones included, so the replay uses twins of the same kinds fitted on the
other rows only: the scores the backtest stores were made without seeing the post.

Each replay is stored as an analysis marked `is_backtest`, with the video's real outcome as its
outcome (`source = 'backtest'`, reported at the time of the backtest: that is when the project
learned it). A video is replayed at most once: a new backtest replaces the earlier replays of the
same videos, so audits never count an outcome twice.

What the score means: overall_score / 100 is the probability that the post resonates
(`virtuna.ml.tiers.resonance`): reaches `resonates_at_views`. The outcome records whether it did,
the absolute tier (the model's edges applied to the real views) and an actual score, the real
views' percentile (0-100) among the training population.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from virtuna.engine.batch import score_payloads
from virtuna.engine.pipeline import ENGINE_VERSION
from virtuna.engine.schema import ContentPayload
from virtuna.log import get_logger, stage
from virtuna.ml.evaluate import TrainingSet, fit_estimator, load_training_set
from virtuna.ml.registry import RegisteredModel, active_model_id, load_model
from virtuna.ml.signal import MLPrediction, tier_predictions
from virtuna.store import connect, run, transaction, utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest stored."""

    run_id: str
    model_id: str
    analyses: int
    resonating_share: float
    replaced: int = 0


def run_backtest(
    *, db_path: Path | str | None = None, limit: int | None = None, seed: int = 0
) -> BacktestResult:
    """Replay the active model's held-out videos and store analyses with their outcomes."""
    from virtuna.config import get_settings

    db = db_path if db_path is not None else get_settings().virtuna_db_path
    run_id = f"backtest-{utcnow():%Y%m%dT%H%M%S}"
    with stage("backtest") as current:
        with connect(db) as con:
            model_id = active_model_id(con)
            if model_id is None:
                raise LookupError("no active tier model: run retrain-ml before a backtest")
            model = load_model(con, model_id)
            relative_id = active_model_id(con, "creator_relative")
            relative = load_model(con, relative_id) if relative_id else None
            held_ids = set(model.card["training"].get("test_row_ids", []))
            if not held_ids:
                raise LookupError(f"model {model_id} records no held-out rows to replay")
            data = load_training_set(con)
        is_held = data.rows["row_id"].isin(held_ids).to_numpy()
        replay = np.flatnonzero(is_held)
        if limit is not None and len(replay) > limit:
            rng = np.random.default_rng(seed)
            replay = np.sort(rng.choice(replay, size=limit, replace=False))
        ml = _twin_predictions(data, np.flatnonzero(~is_held), replay, model, relative)
        rows = data.rows.iloc[replay].reset_index(drop=True)
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
        views = rows["views"].to_numpy(dtype=float)
        log_views = np.log1p(views)
        reference = np.sort(np.log1p(data.rows["views"].to_numpy(dtype=float)))
        percentile = np.searchsorted(reference, log_views, side="right") / len(reference) * 100
        outcome = {
            "tier": model.edges.assign(log_views),
            "percentile": percentile,
            "resonated": views >= np.array([p.resonates_at_views for p in ml], dtype=float),
        }
        with connect(db) as con:
            scores = score_payloads(con, payloads, list(rows["posted_at"]), ml)
            replaced = _store(con, run_id, rows, scores, outcome, model_id)
        share = float(np.mean(outcome["resonated"]))
        current.fields.update(analyses=len(rows), model_id=model_id, replaced=replaced)
    log.info(
        "backtest stored",
        run_id=run_id,
        analyses=len(rows),
        replaced=replaced,
        resonating_share=round(share, 4),
    )
    return BacktestResult(run_id, model_id, len(rows), share, replaced)


def _twin_predictions(
    data: TrainingSet,
    train: np.ndarray,
    replay: np.ndarray,
    model: RegisteredModel,
    relative: RegisteredModel | None,
) -> list[MLPrediction]:
    """The served models' kinds refitted without the replayed rows, and their predictions."""
    features = data.features.iloc[replay]
    twin = fit_estimator(model.kind, model.edges.scheme, data, train, model.edges)  # type: ignore[arg-type]
    absolute = twin.predict_proba(features.loc[:, model.card["features"]])
    probabilities = None
    if relative is not None:
        relative_twin = fit_estimator(
            relative.kind,  # type: ignore[arg-type]
            relative.edges.scheme,
            data,
            train,
            relative.edges,
        )
        probabilities = relative_twin.predict_proba(features.loc[:, relative.card["features"]])
    return tier_predictions(features, model, absolute, relative, probabilities)


def _store(con, run_id, rows, scores, outcome, model_id) -> int:  # type: ignore[no-untyped-def]
    """Store the replays, replacing earlier replays of the same videos; returns how many."""
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
            "signal_profile": [s["signal_profile"] for s in scores],
            "score_target": [s["score_target"] for s in scores],
            "resonates_at_views": [s["resonates_at_views"] for s in scores],
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
            "actual_score": np.round(outcome["percentile"], 2),
            "actual_tier": outcome["tier"],
            "resonated": outcome["resonated"],
            "predicted_score": analyses["overall_score"],
            "delta": np.round(outcome["percentile"] - analyses["overall_score"], 2),
            "reported_at": utcnow(),
        }
    )
    with transaction(con):
        con.register("_analyses", analyses)
        con.register("_outcomes", outcomes)
        try:
            earlier = (
                "SELECT id FROM analysis_results WHERE is_backtest AND source_video_id IN "
                "(SELECT source_video_id FROM _analyses)"
            )
            (replaced,) = con.execute(f"SELECT count(*) FROM ({earlier})").fetchone()  # type: ignore[misc]
            run(con, f"DELETE FROM outcomes WHERE analysis_id IN ({earlier})")
            run(
                con,
                "DELETE FROM analysis_results WHERE is_backtest AND source_video_id IN "
                "(SELECT source_video_id FROM _analyses)",
            )
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
    return int(replaced)
