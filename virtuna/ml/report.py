"""Tables and plots of an evaluation, as the training and retrain notebooks show them, and
which features a fitted model leans on (permutation importance on held-out rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.inspection import permutation_importance

from virtuna.ml.estimators import EstimatorKind, TierEstimator, baseline_kind
from virtuna.ml.evaluate import (
    ORACLES,
    Evaluation,
    SplitKind,
    TrainingSet,
    fit_estimator,
    make_folds,
    predict_tiers,
)
from virtuna.ml.features import OPTIONAL_FIELDS
from virtuna.ml.tiers import TierScheme, expected_tier, fit_edges

ML05_ACCURACY = 0.75  # the requirements' ML-05: accuracy above this...
ML05_RECALL = 0.50  # ...and every tier's recall above this

SUBSETS = {"all": "all rows", "history": "rows with creator history", "no_history": "no history"}


def _label(predictor: str) -> str:
    return f"{predictor} (oracle)" if predictor in ORACLES else predictor


def source_table(
    evaluation: Evaluation, subset: str = "all", metrics: tuple[str, ...] = ("accuracy", "spearman")
) -> pd.DataFrame:
    """Per test source and pooled: rows, history share and each predictor's metrics side by
    side (the baselines beside every model, the oracle marked)."""
    part = evaluation.table[evaluation.table["subset"] == subset].copy()
    if part.empty:
        return pd.DataFrame()
    part["predictor"] = part["predictor"].map(_label)
    wide = part.pivot_table(index="fold", columns="predictor", values=list(metrics))
    sizes = part.groupby("fold")[["rows", "history_share"]].first()
    wide.columns = pd.MultiIndex.from_tuples(wide.columns)
    sizes.columns = pd.MultiIndex.from_tuples([("", "rows"), ("", "history share")])
    table = sizes.join(wide)
    order = [f for f in table.index if f != "pooled"] + ["pooled"]
    return table.loc[order]


def served_metrics(evaluation: Evaluation, predictor: str) -> pd.DataFrame:
    """Every metric of one predictor, per source and pooled, for each subset."""
    part = evaluation.table[evaluation.table["predictor"] == predictor]
    columns = ["fold", "subset", "rows", "accuracy", "min_tier_recall", "within_one",
               "spearman", "ece", "history_share"]  # fmt: skip
    return part[columns].set_index(["fold", "subset"])


def plot_source_accuracy(evaluation: Evaluation, subset: str = "all", ax: Any = None) -> Any:
    """Grouped bars: accuracy per test source for each predictor (the oracle hatched)."""
    part = evaluation.table[evaluation.table["subset"] == subset]
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(9, 4.2))
    if part.empty:
        ax.set_title(f"{evaluation.scheme}, {evaluation.split}: no {SUBSETS.get(subset, subset)}")
        return ax
    wide = part.pivot_table(index="fold", columns="predictor", values="accuracy")
    order = [f for f in wide.index if f != "pooled"] + ["pooled"]
    wide = wide.loc[order]
    width = 0.8 / max(len(wide.columns), 1)
    x = np.arange(len(wide))
    for i, predictor in enumerate(wide.columns):
        ax.bar(
            x + i * width - 0.4 + width / 2,
            wide[predictor].to_numpy(),
            width,
            label=_label(predictor),
            hatch="//" if predictor in ORACLES else None,
            alpha=0.5 if predictor in ORACLES else 1.0,
        )
    ax.set_xticks(x, [f.split(":")[-1][:28] for f in wide.index], rotation=30, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.axhline(0.2, color="grey", lw=0.8, ls=":")
    ax.set_title(f"{evaluation.scheme}, {evaluation.split}: {SUBSETS.get(subset, subset)}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, frameon=False)
    return ax


IMPORTANCE_ROWS = 3000  # held-out rows scored per shuffle (a random sample of them)


def _spearman(estimator: TierEstimator, features: pd.DataFrame, outcome: np.ndarray) -> float:
    """Spearman's rho between the estimator's score and the outcome (the permutation score)."""
    return float(spearmanr(predict_tiers(estimator, features)[1], outcome).statistic)


def feature_importance(
    data: TrainingSet,
    scheme: TierScheme,
    kind: EstimatorKind,
    split: SplitKind = "creator",
    *,
    repeats: int = 3,
    max_rows: int = IMPORTANCE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Permutation importance of each feature: `kind` fitted on the split's training rows, then
    the drop in Spearman's rho (score against outcome) on held-out rows when the feature's
    column is shuffled, mean and spread over `repeats` shuffles; largest drop first."""
    fold = make_folds(split, data, seed)[0]
    outcome = data.outcome(scheme)
    train = fold.train[~np.isnan(outcome[fold.train])]
    test = fold.test[~np.isnan(outcome[fold.test])]
    if len(test) > max_rows:
        test = np.sort(np.random.default_rng(seed).choice(test, max_rows, replace=False))
    edges = fit_edges(pd.Series(outcome[train]), scheme)
    model = fit_estimator(kind, scheme, data, train, edges, seed)
    found = permutation_importance(
        model,
        data.features.iloc[test],
        outcome[test],
        scoring=_spearman,
        n_repeats=repeats,
        random_state=seed,
    )
    table = pd.DataFrame(
        {
            "feature": data.features.columns,
            "importance": found.importances_mean,
            "spread": found.importances_std,
        }
    )
    table.attrs.update(
        held_out=len(test), baseline=_spearman(model, data.features.iloc[test], outcome[test])
    )
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def plot_importance(table: pd.DataFrame, top: int = 20, ax: Any = None) -> Any:
    """Horizontal bars of the `top` permutation importances with their spread."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 0.28 * min(top, len(table)) + 1.2))
    shown = table.head(top).iloc[::-1]
    ax.barh(shown["feature"], shown["importance"], xerr=shown["spread"], color="tab:blue")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("drop in Spearman's rho when the feature is shuffled")
    ax.tick_params(axis="y", labelsize=8)
    return ax


def training_overview(data: TrainingSet) -> pd.DataFrame:
    """Per collection: videos, creators, first and last post and the share with history."""
    rows = data.rows
    overview = rows.groupby("collection").agg(
        videos=("row_id", "size"),
        creators=("author_key", "nunique"),
        first=("posted_at", "min"),
        last=("posted_at", "max"),
    )
    history = pd.Series(data.history, index=rows.index).groupby(rows["collection"]).mean()
    overview["history share"] = history
    return overview.reset_index()


def candidates(scheme: TierScheme, kinds: list[str]) -> list[str]:
    """The predictors compared for a scheme: its baseline, the follower mapping (absolute
    schemes), then the learned `kinds`."""
    chosen: list[str] = [baseline_kind(scheme)]
    if scheme != "creator_relative":
        chosen.append("follower_mapping")
    return chosen + [k for k in kinds if k not in chosen]


def ml05_table(evaluations: dict[tuple[str, str], Evaluation]) -> pd.DataFrame:
    """The requirements' ML-05 per predictor, on the absolute tier's stratified and
    leave-one-source-out splits: accuracy, the smallest tier recall and whether both clear."""
    rows = []
    for (scheme, split), ev in evaluations.items():
        if scheme != "views_quintile" or split not in ("stratified", "leave_one_source_out"):
            continue
        for predictor in sorted(set(ev.table["predictor"])):
            accuracy = ev.metric(predictor, "accuracy")
            recall = ev.metric(predictor, "min_tier_recall")
            rows.append(
                {
                    "split": split,
                    "predictor": _label(predictor),
                    "accuracy": accuracy,
                    "min tier recall": recall,
                    "ML-05 reached": bool(accuracy > ML05_ACCURACY and recall > ML05_RECALL),
                }
            )
    return pd.DataFrame(
        rows, columns=["split", "predictor", "accuracy", "min tier recall", "ML-05 reached"]
    )


def presence_sensitivity(
    data: TrainingSet,
    kinds: list[str],
    scheme: TierScheme = "views_quintile",
    sample: int = 3000,
    seed: int = 0,
) -> pd.DataFrame:
    """How far blanking an optional field moves each kind's expected tier: every kind fitted on
    all rows, then for up to `sample` rows that have the field, the mean |change|."""
    outcome = data.outcome(scheme)
    everything = np.flatnonzero(~np.isnan(outcome))
    edges = fit_edges(pd.Series(outcome[everything]), scheme)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(everything, min(sample, len(everything)), replace=False)
    base = data.features.iloc[chosen]
    rows = []
    for kind in kinds:
        model = fit_estimator(kind, scheme, data, everything, edges)  # type: ignore[arg-type]
        before = expected_tier(model.predict_proba(base))
        for field, columns in OPTIONAL_FIELDS.items():
            present = base[columns[0]].notna().to_numpy()
            if not present.any():
                continue
            blanked = base.assign(**{c: np.nan for c in columns})
            after = expected_tier(model.predict_proba(blanked))
            rows.append(
                {
                    "kind": kind,
                    "field blanked": field,
                    "rows": int(present.sum()),
                    "mean |change| in expected tier": float(np.abs(after - before)[present].mean()),
                }
            )
    return pd.DataFrame(
        rows, columns=["kind", "field blanked", "rows", "mean |change| in expected tier"]
    )
