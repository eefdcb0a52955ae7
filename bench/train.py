"""Benchmark: how long the tier model takes to train, and how the cost grows with the data.

Run: `.venv/bin/python bench/train.py [--scale 10] [--repeat 2]`

It ingests the bundled real data (every data file below data/raw) into a fresh store under
bench/.work (not timed), then measures:

- features: `training_rows` + `build_features` over the bundled videos (the point-in-time
  feature builder, three DuckDB queries plus the caption features in pandas);
- train 1x: `train_and_evaluate` with histogram gradient boosting on the stratified split, on
  the bundled videos: split, tier edges, fit, temperature and every held-out metric;
- train Nx: the same on `--scale` times as many rows, made by resampling the bundled rows
  WITH REPLACEMENT (seed 0). The features are built once (above) and resampled alongside the
  rows, with the outcome, log views and creator of each row; they are not recomputed. Copies
  of one video land on both sides of the split, so the held-out metrics of the resampled run
  mean nothing and are not printed: only its time is measured.

The ratio Nx / 1x says how the training cost grows with the rows. Gradient boosting stops
early on a validation slice it draws from the training rows once there are more than 10,000
of them, so the two runs may fit a different number of boosting iterations (at most 400).
With resampled rows the validation slice holds copies of training rows, its loss keeps
falling and the Nx run usually fits all 400 iterations, where real new rows would stop
sooner: so the time per iteration is printed too, as the cost of the same unit of work.

Each time is the best of `--repeat` runs (wall clock, `time.perf_counter`). The script always
exits 0: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from machine import print_footer

from virtuna.config import load_settings
from virtuna.ingest import data_files, ingest_file
from virtuna.log import configure_logging
from virtuna.ml.features import build_features, training_rows
from virtuna.ml.tiers import outcome_measure
from virtuna.ml.train import TrainResult, train_and_evaluate
from virtuna.store import connect

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
WORK = ROOT / "bench" / ".work"
KIND = "hist_gradient_boosting"
SPLIT = "stratified"
SCHEME = "views_quintile"


def _remove_db(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def build_store() -> Path:
    """A fresh store in bench/.work holding every bundled data file."""
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "train_bundled.duckdb"
    _remove_db(db)
    files = data_files(RAW)
    if not files:
        raise SystemExit(f"{RAW}: no data files")
    started = time.perf_counter()
    for path, ref in files:
        report = ingest_file(path, db_path=db, source_ref=ref)
        if not report.balanced:
            raise SystemExit(f"ingest of {ref} does not add up: {report}")
    print(
        f"store: {db.relative_to(ROOT)} -- {len(files)} bundled files ingested in "
        f"{time.perf_counter() - started:.1f} s (not part of the measurements)"
    )
    return db


def best_of(repeat: int, name: str, run_once: Callable[[], Any]) -> tuple[float, Any]:
    """Run `run_once` `repeat` times; the fastest time and the last run's result."""
    best = float("inf")
    result: Any = None
    for attempt in range(repeat):
        started = time.perf_counter()
        result = run_once()
        seconds = time.perf_counter() - started
        print(f"  {name:<32} run {attempt + 1}/{repeat}: {seconds:8.2f} s")
        best = min(best, seconds)
    return best, result


def boosting_iterations(result: TrainResult) -> int | None:
    """How many boosting iterations the fitted model ran (early stopping may cut them)."""
    model = result.model
    estimator = model[-1] if hasattr(model, "steps") else model
    iterations = getattr(estimator, "n_iter_", None)
    return None if iterations is None else int(iterations)


def main(argv: list[str] | None = None) -> int:
    """Build the store, time features and training at 1x and Nx, print the growth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="rows multiplier for the big run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; best kept")
    args = parser.parse_args(argv)
    if args.scale < 2 or args.repeat < 1:
        parser.error("--scale must be at least 2 and --repeat positive")

    configure_logging(load_settings(virtuna_log_level="WARNING"))
    print(
        f"python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
        f"{os.cpu_count()} cores, best of {args.repeat} runs each; "
        f"model {KIND}, {SPLIT} split, {SCHEME} tiers"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} (other processes on the machine skew the timings)")
    db = build_store()
    print()

    def features_once() -> tuple[pd.DataFrame, pd.DataFrame]:
        with connect(db, read_only=True) as con:
            rows = training_rows(con)
            return rows, build_features(con, rows)

    try:
        feature_s, (rows, features) = best_of(args.repeat, "features (bundled)", features_once)
    finally:
        _remove_db(db)
    outcome = outcome_measure(rows, SCHEME).to_numpy(dtype=float)
    log_views = np.log1p(rows["views"].to_numpy(dtype=float))
    groups = rows["author_key"].to_numpy()
    n = len(rows)

    def train(pick: np.ndarray | None) -> Callable[[], TrainResult]:
        def once() -> TrainResult:
            if pick is None:
                return train_and_evaluate(
                    features, outcome, log_views, groups, kind=KIND, split=SPLIT, scheme=SCHEME
                )
            return train_and_evaluate(
                features.iloc[pick],
                outcome[pick],
                log_views[pick],
                groups[pick],
                kind=KIND,
                split=SPLIT,
                scheme=SCHEME,
            )

        return once

    small_s, small = best_of(args.repeat, f"train 1x ({n:,} rows)", train(None))
    pick = np.random.default_rng(0).integers(0, n, args.scale * n)
    big_s, big = best_of(args.repeat, f"train {args.scale}x ({len(pick):,} rows)", train(pick))

    print()
    print(f"{'measurement':<34}{'rows':>10}{'seconds':>10}{'us/row':>9}{'iters':>7}{'s/iter':>9}")
    print("-" * 79)
    print(f"{'features (bundled)':<34}{n:>10,}{feature_s:>10.2f}{1e6 * feature_s / n:>9.1f}")
    for label, rows_n, seconds, result in (
        ("train 1x (bundled)", n, small_s, small),
        (f"train {args.scale}x (resampled)", len(pick), big_s, big),
    ):
        iterations = boosting_iterations(result)
        per_iter = f"{seconds / iterations:>9.3f}" if iterations else f"{'-':>9}"
        print(
            f"{label:<34}{rows_n:>10,}{seconds:>10.2f}{1e6 * seconds / rows_n:>9.1f}"
            f"{iterations if iterations is not None else '-':>7}{per_iter}"
        )
    print()
    growth = big_s / small_s
    print(
        f"training time grows {growth:.1f}x for {args.scale}x the rows "
        f"(linear would be {args.scale}x; per row {growth / args.scale:.2f} of the 1x cost)"
    )
    small_iter, big_iter = boosting_iterations(small), boosting_iterations(big)
    if small_iter and big_iter:
        per_iter_growth = (big_s / big_iter) / (small_s / small_iter)
        print(
            f"per boosting iteration: {per_iter_growth:.1f}x ({small_iter} iterations at 1x, "
            f"{big_iter} at {args.scale}x: early stopping decides)"
        )
    print(
        f"1x held-out accuracy {small.metrics['accuracy']:.3f} on {small.metrics['rows']:,} "
        f"test rows (the resampled run's metrics are not meaningful and not shown)"
    )

    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
