"""The learned classifiers the tier estimators build on, with their class weights and
temperature calibration.

Class weights: inverse frequency, w_c = n / (k x n_c) over the k tiers present (scikit-learn's
"balanced"), passed as sample weights. With quintile tiers the classes are balanced by
construction and the weights stay near 1; with the engagement scheme's 10 % top tier its weight
is 2. Counting only the tiers present keeps the mean weight at 1, so weighting shifts how the
tiers trade off and leaves the models' regularisation as strong as unweighted. Kinds:

- `logistic`: multinomial logistic regression on median-imputed, standardised features;
- `hist_gradient_boosting`: scikit-learn's HistGradientBoostingClassifier (NaN handled natively);
- `balanced_random_forest`: imbalanced-learn's BalancedRandomForestClassifier with the
  settings of Chen, Liaw & Breiman (2004): every class under-sampled to the minority in each
  bootstrap (`sampling_strategy="all"`, `replacement=True`, `bootstrap=False`), on
  median-imputed features.

How models are split, compared and judged lives in `evaluate.py`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.ensemble import BalancedRandomForestClassifier
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

ModelKind = Literal["logistic", "hist_gradient_boosting", "balanced_random_forest"]
MODEL_KINDS: tuple[ModelKind, ...] = (
    "logistic",
    "hist_gradient_boosting",
    "balanced_random_forest",
)


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
                max_iter=300, learning_rate=0.05, l2_regularization=1.0, random_state=random_state
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


# Temperature scaling is written here, not CalibratedClassifierCV(FrozenEstimator(model),
# method="temperature"): scikit-learn 1.9.1 reads integer labels as logit columns, so tiers 1-5
# get a wrong temperature (3.6-24.7 where 0.80-1.02 is right on the bundled data); with labels
# re-coded 0-4 it agrees with this one (tests/ml/test_train.py), but then fails on calibration
# rows that lack a tier the model knows.
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


def fit_model(model: BaseEstimator, x: pd.DataFrame, y: np.ndarray, kind: ModelKind) -> None:
    """Fit a classifier of a kind with its class weights (the forest balances by sampling)."""
    weights = compute_sample_weight("balanced", y)
    if kind == "hist_gradient_boosting":
        model.fit(x, y, histgradientboostingclassifier__sample_weight=weights)
    elif kind == "logistic":
        model.fit(x, y, logisticregression__sample_weight=weights)
    else:  # the balanced forest balances by under-sampling, as in the paper
        model.fit(x, y)
