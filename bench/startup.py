"""Benchmark: how long the package takes to start, against a bare interpreter.

Run: `.venv/bin/python bench/startup.py [--repeat 5] [--target 0.5]`

Each command runs in a fresh process of the interpreter running this script, with this
checkout first on PYTHONPATH, `--repeat` times; the best wall time counts (the others are
other processes' noise):

- `python -c pass`: the interpreter's own start-up, the floor;
- `python -c "import virtuna"`: what `from virtuna import predict` costs before the first call;
- `virtuna --help`: the console script next to the interpreter (`<venv>/bin/virtuna`), or
  `python -m virtuna.cli --help` when there is none.

It prints each best time in ms, its ratio over the floor, and PASS or MISS against `--target`
seconds (the floor itself has no target). For a MISS it also prints the command's slowest
top-level imports (`python -X importtime`), which is where to look. The script always exits 0:
it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 0.5
_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)")


def _env() -> dict[str, str]:
    """This environment with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def commands() -> list[tuple[str, list[str], bool]]:
    """(label, argv, has a target) of each command measured."""
    python = sys.executable
    script = Path(python).parent / "virtuna"
    help_argv = [str(script)] if script.is_file() else [python, "-m", "virtuna.cli"]
    return [
        ("python -c pass", [python, "-c", "pass"], False),
        ('python -c "import virtuna"', [python, "-c", "import virtuna"], True),
        ("virtuna --help", [*help_argv, "--help"], True),
    ]


def best_wall_s(argv: list[str], repeat: int) -> float:
    """The best wall time of `repeat` runs of argv, seconds (a failed run stops the script)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=_env(), check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        best = min(best, time.perf_counter() - started)
    return best


def slowest_imports(argv: list[str], count: int = 5) -> list[tuple[str, float]]:
    """The top-level imports argv spends most on, (module, ms), from `python -X importtime`."""
    if argv[0] != sys.executable:  # the console script: run its module under the interpreter
        argv = [sys.executable, "-m", "virtuna.cli", *argv[1:]]
    run = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    top = []
    for line in run.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match and len(match[2]) == 1:  # one space of indent: imported by the command itself
            top.append((match[3], int(match[1]) / 1000))
    return sorted(top, key=lambda pair: pair[1], reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    """Time each command, print its best time, its ratio over the floor and PASS/MISS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (best counts)")
    parser.add_argument("--target", type=float, default=TARGET_S, help="target wall time, s")
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; best of {args.repeat}, target "
        f"{args.target * 1e3:.0f} ms"
    )
    floor = None
    for label, command, has_target in commands():
        seconds = best_wall_s(command, args.repeat)
        floor = floor if floor is not None else seconds
        verdict = ("PASS" if seconds <= args.target else "MISS") if has_target else "floor"
        print(f"  {label:<28} {seconds * 1e3:8.1f} ms  {seconds / floor:6.1f}x  {verdict}")
        if verdict == "MISS":
            for module, ms in slowest_imports(command):
                print(f"      {module:<40} {ms:8.1f} ms (import, cumulative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
