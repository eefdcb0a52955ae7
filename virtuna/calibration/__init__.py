"""Calibration: expected calibration error, Platt scaling, audits of stored predictions."""
