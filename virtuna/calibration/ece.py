"""Expected (and maximum) calibration error, vectorised, with bootstrap intervals.

For binary outcomes y in {0, 1} and predicted probabilities p, the predictions are binned
(equal-width bins on [0, 1], p = 1.0 in the last bin; or equal-mass bins holding the same
number of predictions each); ECE = sum over bins of (bin size / n) x |mean p - mean y|, and
MCE = the largest such gap. For a multi-class model, the top-label form uses each row's
highest probability as p and "the top class was right" as y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Binning = Literal["width", "mass"]


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of a calibration measurement (for reliability diagrams)."""

    edges: np.ndarray  # n_bins + 1 edges
    counts: np.ndarray
    mean_predicted: np.ndarray  # NaN for empty bins
    mean_observed: np.ndarray
    ece: float
    mce: float


def _bin_index(p: np.ndarray, n_bins: int, binning: Binning) -> tuple[np.ndarray, np.ndarray]:
    if binning == "width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        index = np.minimum((p * n_bins).astype(int), n_bins - 1)
        return index, edges
    order = np.argsort(p, kind="stable")
    index = np.empty(len(p), dtype=int)
    index[order] = np.arange(len(p)) * n_bins // max(len(p), 1)
    edges = np.concatenate(([0.0], [p[order][index[order] == b].max() for b in range(n_bins)]))
    return index, edges


def calibration_bins(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, binning: Binning = "width"
) -> CalibrationBins:
    """Bin statistics, ECE and MCE of binary outcomes y against probabilities p."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    if y.shape != p.shape:
        raise ValueError(f"outcomes and probabilities differ in shape: {y.shape} vs {p.shape}")
    if len(p) == 0:
        raise ValueError("no predictions to measure")
    if binning == "mass" and len(p) < n_bins:
        raise ValueError(f"equal-mass binning needs at least {n_bins} predictions")
    index, edges = _bin_index(p, n_bins, binning)
    counts = np.bincount(index, minlength=n_bins).astype(float)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(counts > 0, sum_p / counts, np.nan)
        mean_y = np.where(counts > 0, sum_y / counts, np.nan)
    gaps = np.where(counts > 0, np.abs(mean_p - mean_y), 0.0)
    return CalibrationBins(
        edges=edges,
        counts=counts,
        mean_predicted=mean_p,
        mean_observed=mean_y,
        ece=float(np.sum(counts / len(p) * gaps)),
        mce=float(gaps.max()),
    )


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, binning: Binning = "width"
) -> float:
    """ECE of binary outcomes against probabilities."""
    return calibration_bins(y, p, n_bins, binning).ece


def top_label(y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> tuple:
    """(correct, confidence) of a multi-class model's top label, for top-label ECE."""
    probabilities = np.asarray(probabilities, dtype=float)
    top = probabilities.argmax(axis=1)
    correct = (np.asarray(classes)[top] == np.asarray(y_true)).astype(float)
    return correct, probabilities.max(axis=1)


def top_label_ece(
    y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, n_bins: int = 15
) -> float:
    """Top-label ECE of a multi-class model (15 equal-width bins by default)."""
    correct, confidence = top_label(y_true, probabilities, classes)
    return expected_calibration_error(correct, confidence, n_bins)


def bootstrap_ece(
    y: np.ndarray,
    p: np.ndarray,
    n_bins: int = 10,
    *,
    binning: Binning = "width",
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(ECE, lower, upper): the point value and a percentile bootstrap interval."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    point = expected_calibration_error(y, p, n_bins, binning)
    rng = np.random.default_rng(seed)
    n = len(p)
    values = np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, n, n)
        values[i] = expected_calibration_error(y[pick], p[pick], n_bins, binning)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)
