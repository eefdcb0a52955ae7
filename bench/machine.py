"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import os
import resource
import sys


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def print_footer() -> None:
    """Peak memory and core count, after a blank line."""
    print()
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB; cores: {os.cpu_count()}")
