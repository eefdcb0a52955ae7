"""The classifiers' class weights and temperature calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from virtuna.ml.train import ModelKind, apply_temperature, fit_model, fit_temperature, make_model


@pytest.mark.parametrize("kind", ["logistic", "hist_gradient_boosting"])
def test_a_rare_tier_weighs_as_much_as_a_common_one(kind: ModelKind) -> None:
    # Tiers 3 and 5 absent: the weights n / (k x n_c) count the three tiers present.
    tiers = np.array([1] * 60 + [2] * 30 + [4] * 10)
    uninformative = pd.DataFrame({"f": np.zeros(len(tiers))})
    model = make_model(kind)
    fit_model(model, uninformative, tiers, kind)
    assert list(model.classes_) == [1, 2, 4]
    assert model.predict_proba(uninformative.iloc[:1])[0] == pytest.approx([1 / 3] * 3, abs=1e-3)


def _overconfident() -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    """A barely regularised model fitted on 60 rows, and 1000 held-out rows (tiers 1-5)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1060, 4))
    tiers = np.digitize(x[:, 0] + rng.normal(size=len(x)), [-1.0, -0.3, 0.3, 1.0]) + 1
    return LogisticRegression(C=1e4).fit(x[:60], tiers[:60]), x[60:], tiers[60:]


def test_temperature_softens_an_overconfident_model() -> None:
    model, x, tiers = _overconfident()
    raw = model.predict_proba(x)
    temperature = fit_temperature(raw, tiers, model.classes_)
    scaled = apply_temperature(raw, temperature)
    target = np.searchsorted(model.classes_, tiers)

    def loss(p: np.ndarray) -> float:
        return float(-np.mean(np.log(p[np.arange(len(p)), target])))

    assert temperature > 1.5 and loss(scaled) < loss(raw)
    assert np.allclose(scaled.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == raw.argmax(axis=1)).all()  # the ranking is kept


def test_temperature_agrees_with_scikit_learns_given_zero_based_labels() -> None:
    # scikit-learn's own is not used: it reads integer labels as column indices (see train.py).
    model, x, tiers = _overconfident()
    temperature = fit_temperature(model.predict_proba(x), tiers, model.classes_)
    library = CalibratedClassifierCV(FrozenEstimator(model), method="temperature")
    library.fit(x, np.searchsorted(model.classes_, tiers))
    beta = library.calibrated_classifiers_[0].calibrators[0].beta_
    assert temperature == pytest.approx(1 / beta, rel=1e-5)
    ours = apply_temperature(model.predict_proba(x), temperature)
    assert np.abs(ours - library.predict_proba(x)).max() < 1e-6
