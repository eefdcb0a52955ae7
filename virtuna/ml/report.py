"""Tables and plots of an evaluation, as the training and retrain notebooks show them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from virtuna.ml.evaluate import ORACLES, Evaluation

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
