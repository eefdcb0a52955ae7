"""Platt scaling as the aggregator applies it: the active maps from calibration_params.

A raw score s (0-100) maps to 100 x sigmoid(a x s/100 + b). There is one map per signal profile
(`virtuna.engine.aggregate.signal_profile`), fitted (by minimising log-loss) on outcomes of that
profile and activated by the calibration-audit job; a profile without an active map is served
uncalibrated and says so (`is_calibrated` false).
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
    profile: str
    a: float
    b: float


def apply_platt(raw_score: float, params: PlattParams) -> float:
    """The calibrated score (0-100) of a raw score (0-100)."""
    z = params.a * raw_score / 100.0 + params.b
    probability = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return round(min(100.0, max(0.0, probability * 100.0)), 2)


def active_calibrations(con: duckdb.DuckDBPyConnection) -> dict[str, PlattParams]:
    """The active Platt map of each signal profile an audit has calibrated."""
    rows = run(
        con,
        "SELECT profile, max_by(version, version), max_by(a, version), max_by(b, version) "
        "FROM calibration_params WHERE is_active AND profile IS NOT NULL GROUP BY profile",
    )
    return {
        str(profile): PlattParams(int(version), str(profile), float(a), float(b))  # type: ignore[arg-type]
        for profile, version, a, b in rows
    }
