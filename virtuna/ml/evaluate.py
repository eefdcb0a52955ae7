"""Evaluation that cannot be fooled by the source: splits, baselines beside every model, gate.

Splits (each named in every report):
- `leave_one_source_out`: for each data collection with at least MIN_SOURCE_ROWS rows, train
  on all the others and test on it: how a model does on data from a source it never saw;
- `creator`: 80/20 of creators (no creator in both parts);
- `temporal`: train on the posts before the 80th percentile of post time, test on the rest;
- `stratified`: 80/20 stratified by view quintile (the requirements' own measure; mixes
  sources, so it cannot show whether a model learned the source).

Beside every model, on the same rows, the references a sceptic would try first:
- B1 `creator_median`: the creator's earlier median views through the tier edges (the
  training majority tier when there is no history); for the relative scheme `momentum`, the
  last three posts against the earlier median;
- B2 `follower_quantiles`: the follower count's quintile among training rows (the likeliest
  tier without followers): the `follower_mapping` model;
- B3 `source_majority`: each test collection's own majority tier. An ORACLE (it peeks at the
  test labels): a reference for how much "which file is this" alone is worth, never a model.

Metrics per test collection and pooled, on all rows, on rows with creator history and on rows
without: accuracy, recall per tier (the minimum over tiers with at least MIN_TIER_ROWS rows),
within-one-tier, Spearman of the predictor's score against the scheme's own outcome (log views
for the absolute schemes, views against the creator's usual for the relative one), top-label
ECE over 15 bins (models only), and the share of rows with history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from virtuna.calibration.ece import top_label_ece
from virtuna.ml.estimators import (
    BASELINE_KINDS,
    EstimatorKind,
    TierEstimator,
    baseline_kind,
    make_estimator,
)
from virtuna.ml.features import build_features, training_rows
from virtuna.ml.tiers import TIERS, TierEdges, TierScheme, expected_tier, fit_edges, outcome_measure

SplitKind = Literal["leave_one_source_out", "creator", "temporal", "stratified"]
SPLIT_KINDS: tuple[SplitKind, ...] = ("leave_one_source_out", "creator", "temporal", "stratified")
MIN_SOURCE_ROWS = 500
MIN_TIER_ROWS = 20
# Views grow after posting: a video younger than this when scraped has no settled outcome yet
# and is no training target (it still counts as history for later posts).
MIN_AGE_DAYS = 3.0
# Learned kinds see at most this many training rows per collection, so one large crawl does not
# decide what "a post" looks like (the baselines, cheap and few-parameter, see every row).
MAX_ROWS_PER_COLLECTION = 8_000
REFERENCES = ("creator_median", "momentum", "follower_quantiles", "source_majority")
ORACLES = ("source_majority",)
Progress = Callable[[str], None]


@dataclass
class TrainingSet:
    """The target rows (settled outcomes) and their features, aligned by position."""

    rows: pd.DataFrame
    features: pd.DataFrame
    young_excluded: int = 0

    def outcome(self, scheme: TierScheme) -> np.ndarray:
        """The scheme's continuous outcome for every row (NaN where it has none)."""
        frame = self.rows.assign(
            earlier_median_views=np.expm1(self.features["prior_median_log_views"].to_numpy())
        )
        return outcome_measure(frame, scheme).to_numpy(dtype=float)

    @property
    def history(self) -> np.ndarray:
        """Rows whose creator had earlier posts in the store."""
        return self.features["prior_posts"].to_numpy(dtype=float) > 0

    @property
    def collections(self) -> np.ndarray:
        """The collection each row came from."""
        return self.rows["collection"].to_numpy()


def load_training_set(
    con: duckdb.DuckDBPyConnection,
    sources: list[str] | None = None,
    min_age_days: float = MIN_AGE_DAYS,
) -> TrainingSet:
    """Stored videos with settled outcomes as a training set (features over the whole store)."""
    rows = training_rows(con, sources)
    features = build_features(con, rows)
    settled = (rows["age_days"].fillna(np.inf) >= min_age_days).to_numpy()
    return TrainingSet(
        rows=rows.loc[settled].reset_index(drop=True),
        features=features.loc[settled],
        young_excluded=int((~settled).sum()),
    )


@dataclass(frozen=True)
class Fold:
    """Which rows train and which test in one round of a split."""

    name: str
    train: np.ndarray
    test: np.ndarray


def split_description(kind: SplitKind) -> str:
    """The split method in words."""
    return {
        "leave_one_source_out": (
            f"leave-one-source-out: each collection of at least {MIN_SOURCE_ROWS} rows is tested "
            "by a model trained on all the others"
        ),
        "creator": "grouped by creator (no creator in both parts), 80/20 of creators, seed 0",
        "temporal": "temporal: trained on posts before the 80th percentile of post time",
        "stratified": "stratified by view quintile, 80/20, seed 0",
    }[kind]


def make_folds(
    kind: SplitKind, data: TrainingSet, seed: int = 0, min_source_rows: int = MIN_SOURCE_ROWS
) -> list[Fold]:
    """The folds of a split (one for all but leave-one-source-out)."""
    index = np.arange(len(data.rows))
    if kind == "leave_one_source_out":
        names, counts = np.unique(data.collections, return_counts=True)
        held = [n for n, c in zip(names, counts, strict=True) if c >= min_source_rows]
        if len(held) < 2:
            raise ValueError(
                f"leave-one-source-out needs two collections of at least {min_source_rows} "
                f"rows; found {len(held)}"
            )
        return [
            Fold(str(n), index[data.collections != n], index[data.collections == n]) for n in held
        ]
    if kind == "creator":
        splitter = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
        train, test = next(splitter.split(index, groups=data.rows["author_key"].to_numpy()))
    elif kind == "temporal":
        cut = data.rows["posted_at"].quantile(0.8)
        later = (data.rows["posted_at"] >= cut).to_numpy()
        train, test = index[~later], index[later]
    else:
        log_views = np.log1p(data.rows["views"].to_numpy(dtype=float))
        provisional = fit_edges(pd.Series(log_views), "views_quintile").assign(log_views)
        train, test = train_test_split(
            index, test_size=0.2, stratify=provisional, random_state=seed
        )
    return [Fold(kind, np.sort(train), np.sort(test))]


def cap_per_collection(
    rows: np.ndarray, collections: np.ndarray, cap: int, seed: int = 0
) -> np.ndarray:
    """At most `cap` random rows of each collection (sorted)."""
    rng = np.random.default_rng(seed)
    kept = []
    for name in np.unique(collections[rows]):
        members = rows[collections[rows] == name]
        kept.append(members if len(members) <= cap else rng.choice(members, cap, replace=False))
    return np.sort(np.concatenate(kept)) if kept else rows


def fit_estimator(
    kind: EstimatorKind,
    scheme: TierScheme,
    data: TrainingSet,
    rows: np.ndarray,
    edges: TierEdges,
    seed: int = 0,
) -> TierEstimator:
    """An estimator of a kind fitted on the given rows (learned kinds on a capped sample)."""
    outcome = data.outcome(scheme)
    usable = rows[~np.isnan(outcome[rows])]
    if kind not in BASELINE_KINDS:
        usable = cap_per_collection(usable, data.collections, MAX_ROWS_PER_COLLECTION, seed)
    estimator = make_estimator(kind, scheme, seed)
    return estimator.fit(
        data.features.iloc[usable], outcome[usable], edges, groups=data.collections[usable]
    )


def predict_tiers(estimator: TierEstimator, features: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(predicted tier, score, probabilities): a place's tier where the estimator has a place
    (the tier holding the median of its predictive distribution), else the likeliest tier."""
    probabilities = estimator.predict_proba(features)
    place = estimator.location(features)
    if place is not None:
        return estimator.edges_.assign(place), place, probabilities  # type: ignore[attr-defined]
    return (
        np.asarray(TIERS)[probabilities.argmax(axis=1)],
        expected_tier(probabilities),
        (probabilities),
    )


def reference_predictions(
    data: TrainingSet, scheme: TierScheme, edges: TierEdges, fold: Fold
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The sceptic's references on the fold's test rows: name -> (tier, score)."""
    features = data.features.iloc[fold.test]
    train_tiers = edges.assign(data.outcome(scheme)[fold.train])
    majority = int(np.bincount(train_tiers[train_tiers > 0], minlength=6)[1:].argmax() + 1)
    fallback = float(np.nanmedian(data.outcome(scheme)[fold.train][train_tiers == majority]))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if scheme == "creator_relative":
        recent = (features["prior_last3_log_views"] - features["prior_median_log_views"]).to_numpy(
            dtype=float
        )
        score = np.where(np.isnan(recent), fallback, recent)
        out["momentum"] = (edges.assign(score), score)
    else:
        median = features["prior_median_log_views"].to_numpy(dtype=float)
        score = np.where(np.isnan(median), fallback, median)
        tiers = np.where(np.isnan(median), majority, edges.assign(score))
        out["creator_median"] = (tiers, score)
    # B2 is the follower_mapping model itself (the follower count's rank mapped to the outcome
    # at the same rank, so its tier is the follower quintile), fitted on the fold's rows.
    followers = fit_estimator("follower_mapping", scheme, data, fold.train, edges)
    out["follower_quantiles"] = predict_tiers(followers, features)[:2]
    truth = edges.assign(data.outcome(scheme)[fold.test])
    collections = data.collections[fold.test]
    oracle = np.zeros(len(fold.test), dtype=int)
    for name in np.unique(collections):
        members = (collections == name) & (truth > 0)
        counts = np.bincount(truth[members], minlength=6)[1:]
        oracle[collections == name] = int(counts.argmax() + 1)
    out["source_majority"] = (oracle, oracle.astype(float))
    return out


def tier_metrics(
    truth: np.ndarray,
    predicted: np.ndarray,
    score: np.ndarray,
    outcome: np.ndarray,
    history: np.ndarray,
    probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """The report's metrics on rows with a tier."""
    rows = len(truth)
    recall = {}
    for tier in TIERS:
        members = truth == tier
        if members.sum() >= MIN_TIER_ROWS:
            recall[tier] = float(np.mean(predicted[members] == tier))
    rho = np.nan
    if rows >= 10 and np.ptp(score) > 0 and np.ptp(outcome) > 0:
        rho = float(spearmanr(score, outcome).statistic)
    ece = np.nan
    if probabilities is not None and rows:
        ece = float(top_label_ece(truth, probabilities, np.asarray(TIERS), n_bins=15))
    return {
        "rows": rows,
        "accuracy": float(np.mean(predicted == truth)) if rows else np.nan,
        "min_tier_recall": min(recall.values()) if recall else np.nan,
        "within_one": float(np.mean(np.abs(predicted - truth) <= 1)) if rows else np.nan,
        "spearman": rho,
        "ece": ece,
        "history_share": float(np.mean(history)) if rows else np.nan,
        "recall_per_tier": recall,
    }


@dataclass
class Evaluation:
    """Every predictor's metrics on one split of one scheme, and the predictions behind them."""

    scheme: TierScheme
    split: SplitKind
    kinds: list[str]
    table: pd.DataFrame
    predictions: pd.DataFrame = field(repr=False)

    def metric(
        self, predictor: str, metric: str, fold: str = "pooled", subset: str = "all"
    ) -> float:
        """One figure of the table (NaN when absent)."""
        hit = self.table[
            (self.table["predictor"] == predictor)
            & (self.table["fold"] == fold)
            & (self.table["subset"] == subset)
        ]
        return float(hit[metric].iloc[0]) if len(hit) else float("nan")

    def summary(self, subset: str = "all") -> pd.DataFrame:
        """Per fold and pooled: accuracy and Spearman of each predictor side by side."""
        part = self.table[self.table["subset"] == subset]
        return part.pivot_table(
            index=["fold", "rows"], columns="predictor", values=["accuracy", "spearman"]
        )

    def records(self) -> list[dict[str, Any]]:
        """The table as plain records, each naming its scheme and split (for a model card)."""
        table = self.table.drop(columns=["recall_per_tier"])
        return table.assign(scheme=self.scheme, split=self.split).to_dict(orient="records")


def evaluate(
    data: TrainingSet,
    scheme: TierScheme,
    kinds: list[EstimatorKind],
    split: SplitKind = "leave_one_source_out",
    *,
    seed: int = 0,
    min_source_rows: int = MIN_SOURCE_ROWS,
    progress: Progress | None = None,
) -> Evaluation:
    """Fit every kind on each fold's training rows and measure it beside the references."""
    outcome_all = data.outcome(scheme)
    collected: list[pd.DataFrame] = []
    for fold in make_folds(split, data, seed, min_source_rows):
        train = fold.train[~np.isnan(outcome_all[fold.train])]
        test = fold.test[~np.isnan(outcome_all[fold.test])]
        if len(train) < 5 or len(test) == 0:
            continue
        edges = fit_edges(pd.Series(outcome_all[train]), scheme)
        fold = Fold(fold.name, train, test)
        frame = pd.DataFrame(
            {
                "fold": fold.name,
                "position": test,
                "collection": data.collections[test],
                "truth": edges.assign(outcome_all[test]),
                "outcome": outcome_all[test],
                "history": data.history[test],
            }
        )
        for name, (tiers, score) in reference_predictions(data, scheme, edges, fold).items():
            frame[f"{name}:tier"], frame[f"{name}:score"] = tiers, score
        for kind in kinds:
            if progress:
                progress(f"{split} {fold.name}: {kind}")
            estimator = fit_estimator(kind, scheme, data, train, edges, seed)
            tiers, score, probabilities = predict_tiers(estimator, data.features.iloc[test])
            frame[f"{kind}:tier"], frame[f"{kind}:score"] = tiers, score
            for t in TIERS:
                frame[f"{kind}:p{t}"] = probabilities[:, t - 1]
        collected.append(frame)
    if not collected:
        raise ValueError(f"no {split} fold has rows with a {scheme} outcome")
    predictions = pd.concat(collected, ignore_index=True)
    predictors = [p for p in (*REFERENCES, *kinds) if f"{p}:tier" in predictions.columns]
    return Evaluation(scheme, split, list(kinds), _table(predictions, predictors), predictions)


def _table(predictions: pd.DataFrame, predictors: list[str]) -> pd.DataFrame:
    records = []
    groups: list[tuple[str, pd.DataFrame]] = [("pooled", predictions)]
    groups += [(str(name), part) for name, part in predictions.groupby("collection")]
    for fold, part in groups:
        for subset, mask in (
            ("all", np.ones(len(part), dtype=bool)),
            ("history", part["history"].to_numpy()),
            ("no_history", ~part["history"].to_numpy()),
        ):
            rows = part[mask]
            if rows.empty:
                continue
            for predictor in predictors:
                probabilities = None
                if f"{predictor}:p1" in rows.columns:
                    probabilities = rows[[f"{predictor}:p{t}" for t in TIERS]].to_numpy()
                metrics = tier_metrics(
                    rows["truth"].to_numpy(),
                    rows[f"{predictor}:tier"].to_numpy(),
                    rows[f"{predictor}:score"].to_numpy(dtype=float),
                    rows["outcome"].to_numpy(dtype=float),
                    rows["history"].to_numpy(),
                    probabilities,
                )
                records.append(
                    {
                        "fold": fold,
                        "subset": subset,
                        "predictor": predictor,
                        "oracle": predictor in ORACLES,
                        **metrics,
                    }
                )
    return pd.DataFrame.from_records(records)


@dataclass
class Verdict:
    """Whether a learned kind may be served instead of the baseline, and why."""

    passed: bool
    reasons: list[str]


def judge(
    evaluation: Evaluation, kind: str, max_source_loss: float = 0.02, min_rows: int = 500
) -> Verdict:
    """The learned kind against the sceptic on the same rows (see `retrain_ml`'s gate)."""
    reference = "momentum" if evaluation.scheme == "creator_relative" else "creator_median"
    reasons: list[str] = []
    for metric in ("accuracy", "spearman"):
        mine = evaluation.metric(kind, metric, subset="history")
        theirs = evaluation.metric(reference, metric, subset="history")
        if not mine >= theirs:
            reasons.append(
                f"pooled {metric} on rows with history {mine:.3f} < {reference} {theirs:.3f}"
            )
    table = evaluation.table
    per_source = table[
        (table["fold"] != "pooled") & (table["subset"] == "history") & (table["rows"] >= min_rows)
    ]
    for source, part in per_source.groupby("fold"):
        mine = part.loc[part["predictor"] == kind, "accuracy"]
        theirs = part.loc[part["predictor"] == reference, "accuracy"]
        if len(mine) and len(theirs) and mine.iloc[0] < theirs.iloc[0] - max_source_loss:
            reasons.append(
                f"{source}: accuracy {mine.iloc[0]:.3f} is more than {max_source_loss} below "
                f"{reference} {theirs.iloc[0]:.3f}"
            )
    if evaluation.scheme != "creator_relative":
        for metric in ("accuracy", "spearman"):
            mine = evaluation.metric(kind, metric, subset="no_history")
            theirs = evaluation.metric("follower_quantiles", metric, subset="no_history")
            if not np.isnan(theirs) and not mine >= theirs:
                reasons.append(
                    f"pooled {metric} on rows without history {mine:.3f} < "
                    f"follower_quantiles {theirs:.3f}"
                )
    return Verdict(not reasons, reasons)


def sceptic(scheme: TierScheme) -> EstimatorKind:
    """The baseline model served when no learned kind passes."""
    return baseline_kind(scheme)
