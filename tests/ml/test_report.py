"""Evaluation tables and plots for the notebooks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd

from virtuna.ml.evaluate import Evaluation
from virtuna.ml.report import plot_source_accuracy, source_table


def _evaluation(subsets: tuple[str, ...]) -> Evaluation:
    records = [
        {
            "fold": fold,
            "subset": subset,
            "predictor": predictor,
            "rows": 100,
            "history_share": 0.5,
            "accuracy": acc,
            "spearman": 0.5,
            "oracle": predictor == "source_majority",
        }
        for subset in subsets
        for fold, acc in (("a", 0.4), ("pooled", 0.45))
        for predictor in ("creator_median", "source_majority")
    ]
    return Evaluation(
        "views_quintile", "leave_one_source_out", [], pd.DataFrame(records), pd.DataFrame()
    )


def test_source_table_marks_the_oracle_and_puts_pooled_last() -> None:
    table = source_table(_evaluation(("history",)), "history")
    assert list(table.index) == ["a", "pooled"]
    assert ("accuracy", "source_majority (oracle)") in table.columns
    assert table.loc["a", ("accuracy", "creator_median")] == 0.4


def test_an_empty_subset_gives_an_empty_table_and_a_titled_plot() -> None:
    evaluation = _evaluation(("history",))
    assert source_table(evaluation, "no_history").empty
    ax = plot_source_accuracy(evaluation, "no_history")
    assert "no no history" in ax.get_title()
    assert len(plot_source_accuracy(evaluation, "history").patches) == 4


def test_permutation_importance_is_zero_for_a_feature_that_never_varies(small_store) -> None:
    from virtuna.ml.evaluate import load_training_set
    from virtuna.ml.report import feature_importance
    from virtuna.store import connect

    with connect(small_store) as con:
        data = load_training_set(con)
    data.features["weekday"] = 3.0  # shuffling a constant column changes nothing
    table = feature_importance(data, "views_quintile", "residual_boosting", "creator", repeats=2)
    assert set(table["feature"]) == set(data.features.columns)
    assert table["importance"].is_monotonic_decreasing
    assert table.set_index("feature").loc["weekday", "importance"] == 0
    assert table["importance"].max() > 0 and table.attrs["held_out"] > 0


def test_candidates_put_the_baselines_first() -> None:
    from virtuna.ml.report import candidates

    assert candidates("views_quintile", ["logistic"]) == [
        "creator_history",
        "follower_mapping",
        "logistic",
    ]
    assert candidates("creator_relative", ["momentum", "logistic"]) == ["momentum", "logistic"]
