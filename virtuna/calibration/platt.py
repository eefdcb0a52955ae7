"""Platt scaling fitted right: minimise log-loss (scikit-learn's logistic regression).

The map is p = sigmoid(a x s/100 + b) for a raw score s (0-100), the same form the aggregator
applies (`virtuna.engine.calibrate.apply_platt`). The original fitted it by gradient steps of
the wrong sign, which climbed the loss; here an unregularised (C = inf) logistic regression
finds the maximum-likelihood a and b. A fit needs at least 50 outcomes, and is judged on held-out
outcomes it never saw: it is activated only if it lowers their log-loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from virtuna.calibration.ece import expected_calibration_error
from virtuna.store.connection import mark_changed, one, run, transaction, utcnow

MIN_OUTCOMES = 50


class NotEnoughOutcomesError(ValueError):
    """Fewer outcomes than a fit or an audit needs."""


def fit_platt(scores: np.ndarray, outcomes: np.ndarray) -> tuple[float, float]:
    """(a, b) maximising the likelihood of binary outcomes under sigmoid(a s/100 + b)."""
    x = np.asarray(scores, dtype=float).reshape(-1, 1) / 100.0
    y = np.asarray(outcomes, dtype=int)
    if len(y) < MIN_OUTCOMES:
        raise NotEnoughOutcomesError(f"Platt scaling needs {MIN_OUTCOMES} outcomes, got {len(y)}")
    if len(np.unique(y)) < 2:
        raise NotEnoughOutcomesError("Platt scaling needs both outcomes (hits and misses)")
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000).fit(x, y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def platt_probability(scores: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated probabilities of raw scores (0-100), vectorised."""
    z = a * np.asarray(scores, dtype=float) / 100.0 + b
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class PlattAudit:
    """A fit and its judgement on held-out outcomes."""

    a: float
    b: float
    fitted_on: int
    held_out: int
    logloss_before: float
    logloss_after: float
    ece_before: float
    ece_after: float

    @property
    def improves(self) -> bool:
        """True when the fit lowers held-out log-loss."""
        return self.logloss_after < self.logloss_before


def audit_platt(
    scores: np.ndarray, outcomes: np.ndarray, *, held_out_share: float = 0.5, seed: int = 0
) -> tuple[PlattAudit, np.ndarray]:
    """Fit on one part of the outcomes, judge on the rest; returns the audit and held-out mask."""
    scores = np.asarray(scores, dtype=float)
    outcomes = np.asarray(outcomes, dtype=int)
    rng = np.random.default_rng(seed)
    held = rng.random(len(scores)) < held_out_share
    a, b = fit_platt(scores[~held], outcomes[~held])
    raw = np.clip(scores[held] / 100.0, 1e-6, 1 - 1e-6)
    calibrated = np.clip(platt_probability(scores[held], a, b), 1e-6, 1 - 1e-6)
    return (
        PlattAudit(
            a=a,
            b=b,
            fitted_on=int((~held).sum()),
            held_out=int(held.sum()),
            logloss_before=float(log_loss(outcomes[held], raw, labels=[0, 1])),
            logloss_after=float(log_loss(outcomes[held], calibrated, labels=[0, 1])),
            ece_before=expected_calibration_error(outcomes[held], raw),
            ece_after=expected_calibration_error(outcomes[held], calibrated),
        ),
        held,
    )


def _deactivate(con: duckdb.DuckDBPyConnection, profile: str) -> int:
    """Mark a profile's active map inactive (never another profile's); how many were."""
    retired = run(
        con,
        "UPDATE calibration_params SET is_active = FALSE WHERE is_active AND profile = ? "
        "RETURNING version",
        [profile],
    )
    return len(retired)


def retire_maps(con: duckdb.DuckDBPyConnection, profile: str) -> int:
    """Stop serving a profile's map (its scores are then served uncalibrated); how many."""
    retired = _deactivate(con, profile)
    if retired:
        mark_changed(con)
    return retired


def store_platt(
    con: duckdb.DuckDBPyConnection,
    audit: PlattAudit,
    *,
    profile: str,
    window_start: datetime | None,
    window_end: datetime | None,
    activate: bool,
    ece_after_interval: tuple[float, float] | None = None,
) -> int:
    """Persist a profile's fit in calibration_params (the next version); activating it retires
    the profile's earlier map, never another profile's."""
    now = utcnow()
    low, high = ece_after_interval or (None, None)
    with transaction(con):
        (version,) = one(con, "SELECT coalesce(max(version), 0) + 1 FROM calibration_params")
        if activate:
            _deactivate(con, profile)
        run(
            con,
            "INSERT INTO calibration_params (version, method, profile, a, b, window_start, "
            "window_end, sample_count, held_out_count, ece_before, ece_after, ece_after_low, "
            "ece_after_high, logloss_before, logloss_after, is_active, fitted_at, activated_at) "
            "VALUES (?, 'platt', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version,
                profile,
                audit.a,
                audit.b,
                window_start,
                window_end,
                audit.fitted_on + audit.held_out,
                audit.held_out,
                audit.ece_before,
                audit.ece_after,
                low,
                high,
                audit.logloss_before,
                audit.logloss_after,
                activate,
                now,
                now if activate else None,
            ],
        )
    if activate:
        mark_changed(con)
    return int(version)  # type: ignore[call-overload]
