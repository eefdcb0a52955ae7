"""Platt scaling as the aggregator applies it: the active parameters from calibration_params.

A raw score s (0-100) maps to 100 x sigmoid(a x s/100 + b). The parameters are fitted (by
minimising log-loss) and activated by the calibration-audit job; until then predictions are
uncalibrated and say so (`is_calibrated` false).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from virtuna.store.connection import run


@dataclass(frozen=True)
class PlattParams:
    """One fitted Platt map."""

    version: int
    a: float
    b: float


def apply_platt(raw_score: float, params: PlattParams) -> float:
    """The calibrated score (0-100) of a raw score (0-100)."""
    z = params.a * raw_score / 100.0 + params.b
    probability = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return round(min(100.0, max(0.0, probability * 100.0)), 2)


def active_platt(con: duckdb.DuckDBPyConnection) -> PlattParams | None:
    """The active Platt parameters, if an audit has activated any."""
    rows = run(
        con,
        "SELECT version, a, b FROM calibration_params WHERE is_active "
        "ORDER BY version DESC LIMIT 1",
    )
    if not rows:
        return None
    version, a, b = rows[0]
    return PlattParams(int(version), float(a), float(b))  # type: ignore[arg-type]
