"""Training and evaluation of the tier model, with honest, held-out metrics.

Class weights: inverse frequency, w_c = n / (5 x n_c), passed as sample weights (no cap:
with quintile tiers the classes are balanced by construction and the weights stay near 1;
with the engagement scheme's 10 % top tier its weight is 2). Models compared:

- `logistic`: multinomial logistic regression on median-imputed, standardised features;
- `hist_gradient_boosting`: scikit-learn's HistGradientBoostingClassifier (NaN handled natively);
- `balanced_random_forest`: imbalanced-learn's BalancedRandomForestClassifier with the
  settings of Chen, Liaw & Breiman (2004): every class under-sampled to the minority in each
  bootstrap (`sampling_strategy="all"`, `replacement=True`, `bootstrap=False`), on
  median-imputed features.

Two splits, both stated in every report: stratified by tier (80/20), and grouped by creator
(80/20 of creators: how the model does on creators it has never seen). Tier edges are fitted
on the training rows of each split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.ensemble import BalancedRandomForestClassifier
from imblearn.metrics import classification_report_imbalanced
from scipy.optimize import minimize_scalar
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from virtuna.calibration.ece import top_label_ece
from virtuna.ml.tiers import TIERS, TierEdges, TierScheme, expected_tier, fit_edges

ModelKind = Literal["logistic", "hist_gradient_boosting", "balanced_random_forest"]
MODEL_KINDS: tuple[ModelKind, ...] = (
    "logistic",
    "hist_gradient_boosting",
    "balanced_random_forest",
)
SplitKind = Literal["stratified", "creator"]


class EmptyColumnsToZero(TransformerMixin, BaseEstimator):
    """Fill columns that were entirely missing at fit time with 0 (other NaN stay NaN).

    HistGradientBoosting handles NaN natively but fails on a column with no value at all,
    which happens when a source lacks a measure entirely (no follower counts, say).
    """

    def fit(self, x: Any, y: Any = None) -> EmptyColumnsToZero:
        """Remember which columns have no value."""
        self.empty_ = np.all(np.isnan(np.asarray(x, dtype=float)), axis=0)
        return self

    def transform(self, x: Any) -> np.ndarray:
        """The data with the remembered empty columns set to 0."""
        values = np.array(x, dtype=float, copy=True)
        values[:, self.empty_] = 0.0
        return values


def make_model(kind: ModelKind, random_state: int = 0) -> BaseEstimator:
    """An unfitted classifier of the given kind."""
    if kind == "logistic":
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=2000, C=1.0),
        )
    if kind == "hist_gradient_boosting":
        return make_pipeline(
            EmptyColumnsToZero(),
            HistGradientBoostingClassifier(
                max_iter=400, learning_rate=0.05, l2_regularization=1.0, random_state=random_state
            ),
        )
    if kind == "balanced_random_forest":
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            BalancedRandomForestClassifier(
                n_estimators=300,
                sampling_strategy="all",
                replacement=True,
                bootstrap=False,
                n_jobs=2,
                random_state=random_state,
            ),
        )
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights n / (k x n_c) of the tiers present."""
    values, counts = np.unique(y, return_counts=True)
    return {int(v): float(len(y) / (len(values) * c)) for v, c in zip(values, counts, strict=True)}


def sample_weights(y: np.ndarray) -> np.ndarray:
    """Each row's class weight."""
    weights = class_weights(y)
    return np.array([weights[int(v)] for v in y])


@dataclass(frozen=True)
class Split:
    """Which rows train and which test, and how they were chosen."""

    kind: SplitKind
    train: np.ndarray
    test: np.ndarray

    def describe(self) -> str:
        """The split method in words."""
        if self.kind == "stratified":
            return "stratified by view quintile, 80/20, seed 0"
        return "grouped by creator (no creator in both parts), 80/20 of creators, seed 0"


def make_split(
    kind: SplitKind, outcome: np.ndarray, groups: np.ndarray, test_size: float = 0.2, seed: int = 0
) -> Split:
    """A stratified (by provisional tier) or creator-grouped split of the rows."""
    index = np.arange(len(outcome))
    if kind == "stratified":
        provisional = fit_edges(pd.Series(outcome), "views_quintile").assign(outcome)
        train, test = train_test_split(
            index, test_size=test_size, stratify=provisional, random_state=seed
        )
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train, test = next(splitter.split(index, groups=groups))
    return Split(kind, np.sort(train), np.sort(test))


def fit_temperature(probabilities: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Temperature T minimising the log-loss of softmax(log p / T) on held-out rows."""
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0))
    target = np.searchsorted(classes, y)

    def loss(t: float) -> float:
        scaled = log_p / t
        scaled -= scaled.max(axis=1, keepdims=True)
        logz = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(logz - scaled[np.arange(len(y)), target]))

    return float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities rescaled by a temperature."""
    scaled = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def evaluate(
    y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, log_views: np.ndarray
) -> dict[str, Any]:
    """Every metric the reports show, on held-out rows."""
    predicted = classes[probabilities.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=list(TIERS), zero_division=0
    )
    rho = spearmanr(expected_tier(_full(probabilities, classes)), log_views).statistic
    return {
        "rows": len(y_true),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "macro_f1": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
        "within_one_tier": float(np.mean(np.abs(predicted - y_true) <= 1)),
        "spearman_expected_tier_log_views": float(rho),
        "per_tier": {
            int(t): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for t, p, r, f, s in zip(TIERS, precision, recall, f1, support, strict=True)
        },
        "min_tier_recall": float(np.min(recall)),
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=list(TIERS)).tolist(),
        "top_label_ece_15": float(top_label_ece(y_true, probabilities, classes, n_bins=15)),
        "report_imbalanced": classification_report_imbalanced(
            y_true, predicted, labels=list(TIERS), zero_division=0
        ),
    }


def _full(probabilities: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Probabilities over all five tiers (a class absent from training gets 0)."""
    full = np.zeros((len(probabilities), len(TIERS)))
    full[:, np.searchsorted(TIERS, classes)] = probabilities
    return full


@dataclass
class TrainResult:
    """A fitted model with its tier edges, calibration and held-out metrics."""

    kind: ModelKind
    split: Split
    edges: TierEdges
    model: BaseEstimator
    temperature: float
    metrics: dict[str, Any]
    metrics_uncalibrated: dict[str, Any]
    feature_names: list[str] = field(default_factory=list)


def train_and_evaluate(
    features: pd.DataFrame,
    outcome: np.ndarray,
    log_views: np.ndarray,
    groups: np.ndarray,
    *,
    kind: ModelKind = "hist_gradient_boosting",
    split: SplitKind = "stratified",
    scheme: TierScheme = "views_quintile",
    seed: int = 0,
) -> TrainResult:
    """Fit on the training part, calibrate a temperature on a slice of it, test on the rest."""
    chosen = make_split(split, log_views, groups, seed=seed)
    usable = ~np.isnan(outcome)
    train = chosen.train[usable[chosen.train]]
    test = chosen.test[usable[chosen.test]]
    edges = fit_edges(pd.Series(outcome[train]), scheme)
    tiers = edges.assign(outcome)
    # A tenth of the training rows calibrates the temperature and never trains the model.
    fit_rows, calibration_rows = train_test_split(
        train, test_size=0.1, stratify=tiers[train], random_state=seed
    )
    model = make_model(kind, seed)
    _fit(model, features.iloc[fit_rows], tiers[fit_rows], kind)
    classes = np.asarray(model.classes_)
    temperature = fit_temperature(
        model.predict_proba(features.iloc[calibration_rows]), tiers[calibration_rows], classes
    )
    raw = model.predict_proba(features.iloc[test])
    return TrainResult(
        kind=kind,
        split=Split(chosen.kind, train, test),
        edges=edges,
        model=model,
        temperature=temperature,
        metrics=evaluate(
            tiers[test], apply_temperature(raw, temperature), classes, log_views[test]
        ),
        metrics_uncalibrated=evaluate(tiers[test], raw, classes, log_views[test]),
        feature_names=list(features.columns),
    )


def _fit(model: BaseEstimator, x: pd.DataFrame, y: np.ndarray, kind: ModelKind) -> None:
    weights = sample_weights(y)
    if kind == "hist_gradient_boosting":
        model.fit(x, y, histgradientboostingclassifier__sample_weight=weights)
    elif kind == "logistic":
        model.fit(x, y, logisticregression__sample_weight=weights)
    else:  # the balanced forest balances by under-sampling, as in the paper
        model.fit(x, y)
