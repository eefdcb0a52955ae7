"""retrain-ml: rebuild the training set, judge a learned model against the sceptic, serve
the winner.

The gate, in order:
1. The learned kind is evaluated leave-one-source-out beside the baselines (creator-grouped
   when the store holds fewer than two collections large enough to hold out, said in the
   reason). It may be served only if, on rows with creator history, its pooled accuracy and
   Spearman are at least the creator's own median's (B1; for the relative scheme the momentum
   baseline), it loses to B1 by more than 0.02 accuracy on no source of at least 500 rows, on
   rows without history it is at least as good as the follower-count quantiles, and (absolute
   schemes) it clears the requirements' 0.60 accuracy on the stratified split.
2. Otherwise the baseline itself is served: it is a model of its own kind with calibrated
   probabilities, and the reason says plainly that the learned model did not beat it.
3. Whatever wins is fitted on every row and promoted only if it is not worse than the active
   model of the same scheme on the same stratified held-out rows (the active model may have
   trained on them, which favours it: a conservative comparison), and only if the data or the
   set-up changed (the data hash covers the features, the scheme, the kind and the split).
A refused model stays registered with the reason; the serving model is never deleted. A dry
run evaluates, fits and decides, and registers nothing (the decision is what would happen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from virtuna.log import get_logger, stage
from virtuna.ml.estimators import LEARNED_KINDS, EstimatorKind, baseline_kind
from virtuna.ml.evaluate import (
    Evaluation,
    SplitKind,
    Verdict,
    evaluate,
    fit_estimator,
    judge,
    load_training_set,
    split_description,
)
from virtuna.ml.registry import (
    active_model_id,
    data_hash,
    load_model,
    promote,
    refuse,
    save_model,
)
from virtuna.ml.tiers import TierScheme, fit_edges
from virtuna.store import connect

log = get_logger(__name__)

GATE_ACCURACY = 0.60
MIN_ROWS = 500


@dataclass
class RetrainResult:
    """What the job decided, and on what evidence."""

    status: str  # promoted, refused, skipped (what would happen, on a dry run)
    reason: str
    model_id: str | None = None  # None on a dry run: nothing was registered
    rows: int = 0
    served_kind: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    active_accuracy: float | None = None
    evaluation: Evaluation | None = None
    stratified: Evaluation | None = None
    verdict: Verdict | None = None
    dry_run: bool = False


def retrain_ml(
    *,
    db_path: Path | str | None = None,
    scheme: TierScheme = "views_quintile",
    kind: EstimatorKind = "residual_boosting",
    split: SplitKind = "leave_one_source_out",
    sources: list[str] | None = None,
    min_rows: int = MIN_ROWS,
    gate: float = GATE_ACCURACY,
    progress: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> RetrainResult:
    """The retrain-ml job (a dry run registers, promotes and refuses nothing)."""
    from virtuna.config import get_settings

    db = db_path if db_path is not None else get_settings().virtuna_db_path
    with stage("retrain-ml", scheme=scheme, kind=kind, split=split) as current:
        with connect(db) as con:
            data = load_training_set(con, sources)
        outcome = data.outcome(scheme)
        usable = int(np.sum(~np.isnan(outcome)))
        if usable < min_rows:
            reason = f"only {usable} usable videos; at least {min_rows} needed"
            log.warning("retrain-ml skipped", reason=reason)
            return RetrainResult("skipped", reason, rows=usable, dry_run=dry_run)
        baseline = baseline_kind(scheme)
        kinds: list[EstimatorKind] = [baseline]
        if kind not in kinds:
            kinds.append(kind)
        notes: list[str] = []
        try:
            evaluation = evaluate(data, scheme, kinds, split, progress=progress)
        except ValueError as exc:
            if split != "leave_one_source_out":
                raise
            notes.append(f"{exc}; judged on the creator-grouped split instead")
            split = "creator"
            evaluation = evaluate(data, scheme, kinds, split, progress=progress)
        stratified = evaluate(data, scheme, [baseline, kind], "stratified", progress=progress)
        served: EstimatorKind = baseline
        verdict = None
        if kind in LEARNED_KINDS:
            verdict = judge(evaluation, kind)
            seed_accuracy = stratified.metric(kind, "accuracy")
            # The requirements' 0.60 is a bar for the absolute tier; the relative tier's bar is
            # the momentum baseline (chance is 0.20 there).
            if scheme != "creator_relative" and seed_accuracy < gate:
                verdict.passed = False
                verdict.reasons.append(
                    f"stratified accuracy {seed_accuracy:.3f} is below the gate {gate:.2f}"
                )
            if verdict.passed:
                served = kind
                notes.append(f"{kind} beats the baselines on {split} ({split_description(split)})")
            else:
                notes.append(
                    f"{kind} does not beat the creator's own history, so the {baseline} "
                    f"baseline is served: " + "; ".join(verdict.reasons)
                )
        metrics = _headline(evaluation, stratified, served)
        everything = np.flatnonzero(~np.isnan(outcome))
        edges = fit_edges(pd.Series(outcome[everything]), scheme)
        model = fit_estimator(served, scheme, data, everything, edges)
        digest = data_hash(
            data.features.assign(outcome=outcome), scheme=scheme, kind=served, split=split
        )
        test_rows = stratified.predictions["position"].to_numpy()
        with connect(db) as con:
            active_id = active_model_id(con, scheme)
            active_accuracy, active_hash = None, None
            if active_id is not None:
                try:
                    active = load_model(con, active_id)
                    active_hash = active.card["training"].get("data_hash")
                    truth = stratified.predictions["truth"].to_numpy()
                    predicted = active.predict_tiers(data.features.iloc[test_rows])[0]
                    active_accuracy = float(np.mean(predicted == truth))
                except Exception as exc:  # an unusable active model is no bar to a new one
                    log.warning("active model not comparable", model_id=active_id, error=str(exc))
            accuracy = metrics["stratified_accuracy"]
            if active_hash is not None and active_hash == digest:
                status = "refused"
                reason = "the training data has not changed since the active model was trained"
            elif active_accuracy is not None and accuracy < active_accuracy:
                status = "refused"
                reason = (
                    f"stratified accuracy {accuracy:.3f} is below the active model's "
                    f"{active_accuracy:.3f} on the same rows"
                )
            else:
                status = "promoted"
                reason = f"{served} served; " + "; ".join(notes) if notes else f"{served} served"
            model_id = None
            if not dry_run:
                model_id = save_model(
                    con,
                    db,
                    model=model,
                    metrics=metrics,
                    evaluation=evaluation.records() + stratified.records(),
                    training={
                        "rows": usable,
                        "kind": served,
                        "candidate": kind,
                        "split": split_description(split),
                        "collections": sorted(set(data.collections.tolist())),
                        "young_excluded": data.young_excluded,
                        "window": [
                            str(data.rows["posted_at"].min()),
                            str(data.rows["posted_at"].max()),
                        ],
                        "data_hash": digest,
                        # The held-out rows: backtests replay only these, never its training rows.
                        "test_row_ids": data.rows["row_id"].iloc[test_rows].tolist(),
                    },
                )
                (refuse if status == "refused" else promote)(con, model_id, reason)
        current.fields.update(status=status, served=served, rows=usable)
    log.info("retrain-ml", status=status, reason=reason, model_id=model_id)
    return RetrainResult(
        status,
        reason,
        model_id,
        usable,
        served,
        metrics,
        active_accuracy,
        evaluation,
        stratified,
        verdict,
        dry_run,
    )


def _headline(evaluation: Evaluation, stratified: Evaluation, served: str) -> dict[str, Any]:
    """The served kind's figures the card and the job summary show first."""
    reference = "momentum" if evaluation.scheme == "creator_relative" else "creator_median"
    return {
        "split": evaluation.split,
        "accuracy": evaluation.metric(served, "accuracy"),
        "spearman": evaluation.metric(served, "spearman"),
        "ece": evaluation.metric(served, "ece"),
        "min_tier_recall": evaluation.metric(served, "min_tier_recall"),
        "within_one": evaluation.metric(served, "within_one"),
        "history_accuracy": evaluation.metric(served, "accuracy", subset="history"),
        "reference": reference,
        "reference_accuracy": evaluation.metric(reference, "accuracy"),
        "reference_spearman": evaluation.metric(reference, "spearman"),
        "reference_history_accuracy": evaluation.metric(reference, "accuracy", subset="history"),
        "stratified_accuracy": stratified.metric(served, "accuracy"),
        "stratified_min_tier_recall": stratified.metric(served, "min_tier_recall"),
    }
