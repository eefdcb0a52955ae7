"""Benchmark: the project's vectorised ECE and bootstrap against a textbook implementation.

Run: `.venv/bin/python bench/calibration.py [--n 1000000] [--resamples 1000] [--repeat 5]`

Both sides measure the same predictions: `--n` synthetic scores drawn uniformly on 0-100 and
rounded to 2 decimals as the store keeps them (so some land exactly on a bin edge), served as
probabilities p = score / 100, and Bernoulli outcomes drawn from a known miscalibrated sigmoid,
P(hit | p) = sigmoid(6 p - 3.5). The data is synthetic on purpose: this measures a mechanism
(binning, averaging, resampling), and a known truth lets the script print the population ECE
the sample estimates should approach.

- project: `virtuna.calibration.ece.expected_calibration_error` (10 equal-width bins; one
  `np.bincount` pass for counts, sums of p and sums of y) and `bootstrap_ece` (percentile
  bootstrap, `--resamples` resamples). This is what is being measured.
- textbook: written here, independent of the project: a loop over the bins, a numpy boolean
  mask per bin ([lo, hi), the last bin closed), and the bin's share times |mean p - mean y|.
  The edges are b / n_bins, not `np.linspace`: linspace's edges 0.30000000000000004,
  0.6000000000000001 and 0.7000000000000001 would put p = 0.3, 0.6 and 0.7 one bin low. Its
  bootstrap draws the same resamples (same seed, `rng.integers(0, n, n)` per resample), so with
  the same number of resamples both must give the same interval; it runs only
  `--baseline-resamples` resamples, since it is slow, and the speed is compared per resample.

The ECE values must agree to 1e-9 (AGREE / DISAGREE). Every ECE timing is the best of
`--repeat` runs (wall clock, `time.perf_counter`); the bootstraps run once each (the project's
1,000 resamples take most of the run), and both sides are timed in the same run. The script
always exits 0: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from virtuna.calibration.ece import bootstrap_ece, expected_calibration_error

N_BINS = 10
TOLERANCE = 1e-9
TRUE_A, TRUE_B = 6.0, -3.5  # P(hit | p) = sigmoid(TRUE_A p + TRUE_B)


def true_probability(p: np.ndarray) -> np.ndarray:
    """The known probability of a hit for a served probability p."""
    return 1.0 / (1.0 + np.exp(-(TRUE_A * p + TRUE_B)))


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, p): Bernoulli outcomes and served probabilities (scores rounded to 2 decimals)."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(0.0, 100.0, n), 2) / 100.0
    y = (rng.random(n) < true_probability(p)).astype(float)
    return y, p


# --------------------------------------------------------------------------- textbook


def textbook_ece(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE as a textbook writes it: one boolean mask per equal-width bin."""
    n = len(p)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (p >= lo) & (p < hi) if b < n_bins - 1 else (p >= lo) & (p <= hi)
        count = in_bin.sum()
        if count == 0:
            continue
        total += count / n * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(total)


def textbook_bootstrap(
    y: np.ndarray, p: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """(ECE, lower, upper): resample with replacement, ECE each time, percentile interval."""
    rng = np.random.default_rng(seed)
    n = len(p)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        values.append(textbook_ece(y[pick], p[pick]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return textbook_ece(y, p), float(low), float(high)


# --------------------------------------------------------------------------- timing


def best_of(repeat: int, run_once: Callable[[], object]) -> tuple[object, float]:
    """(result, seconds) of the fastest of `repeat` runs."""
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run_once()
        best = min(best, time.perf_counter() - started)
    return result, best


def _agree(a: float, b: float) -> str:
    return "AGREE" if abs(a - b) <= TOLERANCE else "DISAGREE  <-- implementations differ"


def main(argv: list[str] | None = None) -> int:
    """Build the predictions, time both ECEs and both bootstraps, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="predictions")
    parser.add_argument("--resamples", type=int, default=1000, help="project bootstrap resamples")
    parser.add_argument(
        "--baseline-resamples", type=int, default=20, help="textbook bootstrap resamples"
    )
    parser.add_argument("--repeat", type=int, default=5, help="ECE runs per method; best kept")
    parser.add_argument("--seed", type=int, default=0, help="data and bootstrap seed")
    args = parser.parse_args(argv)
    if min(args.n, args.resamples, args.baseline_resamples, args.repeat) < 1:
        parser.error("--n, --resamples, --baseline-resamples and --repeat must be positive")

    started = time.perf_counter()
    y, p = make_data(args.n, args.seed)
    on_edge = int(np.isin(p, np.arange(1, N_BINS) / N_BINS).sum())
    population = textbook_ece(true_probability(p), p)  # ECE against the known truth
    print(
        f"{args.n:,} predictions, hit rate {y.mean():.4f}, {on_edge:,} exactly on an inner "
        f"bin edge; population ECE (against the true sigmoid) {population:.6f}; "
        f"built in {time.perf_counter() - started:.2f} s"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    # (1) ECE, 10 bins.
    project, project_s = best_of(args.repeat, lambda: expected_calibration_error(y, p, N_BINS))
    textbook, textbook_s = best_of(args.repeat, lambda: textbook_ece(y, p, N_BINS))
    assert isinstance(project, float) and isinstance(textbook, float)
    print()
    print(f"ECE, {N_BINS} equal-width bins (best of {args.repeat})")
    print(f"  project expected_calibration_error: {project:.12f}  {project_s * 1e3:9.2f} ms")
    print(f"  textbook per-bin masks:             {textbook:.12f}  {textbook_s * 1e3:9.2f} ms")
    print(
        f"  |difference| {abs(project - textbook):.2e} (tolerance {TOLERANCE:g})  "
        f"{_agree(project, textbook)}"
    )
    print(f"  project is {textbook_s / project_s:.2f}x faster")

    # (2) Bootstrap. Same draws with the same seed, so the same resample count must agree.
    small = args.baseline_resamples
    check_project = bootstrap_ece(y, p, N_BINS, resamples=small, seed=args.seed)
    started = time.perf_counter()
    check_textbook = textbook_bootstrap(y, p, small, args.seed)
    textbook_boot_s = time.perf_counter() - started
    started = time.perf_counter()
    point, low, high = bootstrap_ece(y, p, N_BINS, resamples=args.resamples, seed=args.seed)
    project_boot_s = time.perf_counter() - started
    project_per = project_boot_s / args.resamples
    textbook_per = textbook_boot_s / small
    print()
    print("bootstrap 95 % interval of the ECE (one run each)")
    print(
        f"  project bootstrap_ece, {args.resamples:,} resamples: ECE {point:.6f}, "
        f"[{low:.6f}, {high:.6f}] in {project_boot_s:.2f} s ({project_per * 1e3:.2f} ms each)"
    )
    print(
        f"  textbook, {small} resamples: ECE {check_textbook[0]:.6f}, "
        f"[{check_textbook[1]:.6f}, {check_textbook[2]:.6f}] in {textbook_boot_s:.2f} s "
        f"({textbook_per * 1e3:.2f} ms each)"
    )
    print(
        f"  project, same {small} resamples: [{check_project[1]:.6f}, {check_project[2]:.6f}]  "
        f"{_agree(check_project[1], check_textbook[1])} (lower), "
        f"{_agree(check_project[2], check_textbook[2])} (upper)"
    )
    print(f"  per resample, the project is {textbook_per / project_per:.2f}x faster")
    print(
        f"  the population ECE {population:.6f} is "
        f"{'inside' if low <= population <= high else 'outside'} the project's interval"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
