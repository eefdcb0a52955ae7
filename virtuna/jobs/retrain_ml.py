"""retrain-ml: rebuild the training set from scraped_videos, train, evaluate, gate, promote.

A new model is promoted only if its held-out accuracy is at least 0.60 (the requirements' gate) AND
it is not worse than the active model on the same held-out rows, labelled by the new tier
edges. The active model may have trained on some of those rows, which favours it: a
conservative comparison. A refused model stays registered with the reason; the serving model
is never deleted. Too few rows: skipped with the reason (there is no ungated fallback path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from virtuna.log import get_logger, stage
from virtuna.ml.features import build_features, training_rows
from virtuna.ml.registry import (
    active_model_id,
    data_hash,
    load_model,
    promote,
    refuse,
    save_model,
)
from virtuna.ml.tiers import TierScheme, outcome_measure
from virtuna.ml.train import ModelKind, SplitKind, TrainResult, train_and_evaluate
from virtuna.store import connect

log = get_logger(__name__)

GATE_ACCURACY = 0.60
MIN_ROWS = 500


@dataclass
class RetrainResult:
    """What the job decided, and on what evidence."""

    status: str  # promoted, refused, skipped
    reason: str
    model_id: str | None = None
    rows: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    active_accuracy: float | None = None
    train: TrainResult | None = None


def retrain_ml(
    *,
    db_path: Path | str | None = None,
    scheme: TierScheme = "views_quintile",
    kind: ModelKind = "hist_gradient_boosting",
    split: SplitKind = "stratified",
    sources: list[str] | None = None,
    min_rows: int = MIN_ROWS,
    gate: float = GATE_ACCURACY,
) -> RetrainResult:
    """The retrain-ml job."""
    from virtuna.config import get_settings

    db = db_path if db_path is not None else get_settings().virtuna_db_path
    with stage("retrain-ml", scheme=scheme, kind=kind, split=split) as current:
        with connect(db) as con:
            rows = training_rows(con, sources)
            if scheme == "creator_relative":
                rows["earlier_median_views"] = np.expm1(
                    build_features(con, rows)["prior_median_log_views"].to_numpy()
                )
            features = build_features(con, rows)
        if len(rows) < min_rows:
            reason = f"only {len(rows)} usable videos; at least {min_rows} needed"
            log.warning("retrain-ml skipped", reason=reason)
            return RetrainResult("skipped", reason, rows=len(rows))
        outcome = outcome_measure(rows, scheme).to_numpy(dtype=float)
        log_views = np.log1p(rows["views"].to_numpy(dtype=float))
        result = train_and_evaluate(
            features,
            outcome,
            log_views,
            rows["author_key"].to_numpy(),
            kind=kind,
            split=split,
            scheme=scheme,
        )
        accuracy = result.metrics["accuracy"]
        with connect(db) as con:
            active_id = active_model_id(con)
            active_accuracy = None
            active_hash = None
            if active_id is not None:
                try:
                    active = load_model(con, active_id)
                    active_hash = active.card["training"].get("data_hash")
                    test = result.split.test
                    labels = result.edges.assign(outcome[test])
                    probs = active.predict_proba(features.iloc[test])
                    predicted = np.asarray(active.card["classes"])[probs.argmax(axis=1)]
                    active_accuracy = float(np.mean(predicted == labels))
                except Exception as exc:  # an unusable active model is no bar to a new one
                    log.warning("active model not comparable", model_id=active_id, error=str(exc))
            model_id = save_model(
                con,
                db,
                model=result.model,
                edges=result.edges,
                temperature=result.temperature,
                classes=[int(c) for c in result.model.classes_],
                metrics={k: v for k, v in result.metrics.items() if k != "report_imbalanced"},
                training={
                    "rows": len(rows),
                    "kind": kind,
                    "split": result.split.describe(),
                    "sources": sorted(rows["source"].unique().tolist()),
                    "window": [str(rows["posted_at"].min()), str(rows["posted_at"].max())],
                    "data_hash": data_hash(features),
                    # The held-out rows: backtests replay only these, never rows it trained on.
                    "test_row_ids": rows["row_id"].iloc[result.split.test].tolist(),
                },
            )
            if active_hash is not None and active_hash == data_hash(features):
                reason = "the training data has not changed since the active model was trained"
                refuse(con, model_id, reason)
                status = "refused"
            elif accuracy < gate:
                reason = f"held-out accuracy {accuracy:.3f} is below the gate {gate:.2f}"
                refuse(con, model_id, reason)
                status = "refused"
            elif active_accuracy is not None and accuracy < active_accuracy:
                reason = (
                    f"held-out accuracy {accuracy:.3f} is below the active model's "
                    f"{active_accuracy:.3f} on the same rows"
                )
                refuse(con, model_id, reason)
                status = "refused"
            else:
                reason = f"held-out accuracy {accuracy:.3f} passes the gate {gate:.2f}" + (
                    f" and is not below the active model's {active_accuracy:.3f}"
                    if active_accuracy is not None
                    else ""
                )
                promote(con, model_id, reason)
                status = "promoted"
        current.fields.update(status=status, accuracy=round(accuracy, 3), rows=len(rows))
    log.info("retrain-ml", status=status, reason=reason, model_id=model_id)
    return RetrainResult(
        status, reason, model_id, len(rows), result.metrics, active_accuracy, train=result
    )
