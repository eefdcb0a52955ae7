"""What every report notebook shares: quiet set-up, figures saved as PNG, tables and dated titles.

A notebook run by `execute_notebook` learns its run folder (reports/<job>/<run>/) from
VIRTUNA_RUN_DIR: its logs go to `log.txt` there rather than into the report, and each figure is
also saved under `figures/`. Opened by hand, logs go to stderr and figures are only shown.

Importing this module loads nothing heavy: pandas and matplotlib are imported where used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

RUN_DIR_ENV = "VIRTUNA_RUN_DIR"
LOG_FILE = "log.txt"
FIGURES = "figures"
FIGURE_DPI = 110
_log_stream: IO[str] | None = None  # the open log file, kept for the kernel's lifetime


def run_dir() -> Path | None:
    """The run folder this notebook writes its outputs in (None when opened by hand)."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def start(level: str = "WARNING") -> None:
    """Set up a report's kernel: log at `level` to the run's log file (stderr by hand), warnings
    included, and one style for every chart."""
    global _log_stream
    import matplotlib.pyplot as plt

    from virtuna.config import load_settings
    from virtuna.log import configure_logging

    folder = run_dir()
    if folder is not None and _log_stream is None:
        folder.mkdir(parents=True, exist_ok=True)
        _log_stream = (folder / LOG_FILE).open("a", encoding="utf-8", buffering=1)
    configure_logging(load_settings(virtuna_log_level=level), stream=_log_stream)
    logging.captureWarnings(True)
    plt.rcParams.update(
        {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False}
    )


def figure(fig: Any, name: str) -> Path | None:
    """Show a finished figure in the report and save it as figures/<name>.png in the run
    folder; the saved file, or None when opened by hand."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = None
    folder = run_dir()
    if folder is not None:
        path = folder / FIGURES / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.show()
    return path


def table(frame: Any, formats: dict[str, str] | None = None) -> Any:
    """A frame styled for a report: no index, thousands separators, 3 decimals, minute times,
    "-" for missing values (`formats` overrides a column's format)."""
    import pandas as pd

    formats = dict(formats or {})
    for name, dtype in frame.dtypes.items():
        if name in formats:
            continue
        if pd.api.types.is_bool_dtype(dtype):
            formats[name] = "{}"
        elif pd.api.types.is_integer_dtype(dtype):
            formats[name] = "{:,}"
        elif pd.api.types.is_float_dtype(dtype):
            formats[name] = "{:,.3f}"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            formats[name] = "{:%Y-%m-%d %H:%M}"
    return frame.style.format(formats, na_rep="-").hide(axis="index")


def facts(values: dict[str, object]) -> Any:
    """A two-column table of named values (the summary at the top of a report)."""
    import pandas as pd

    shown = {k: "-" if v is None else v for k, v in values.items()}
    frame = pd.DataFrame({"": list(shown), "value": [str(v) for v in shown.values()]})
    return frame.style.hide(axis="index")


def data_time(moment: datetime | None, *, now: datetime | None = None) -> str:
    """When the data is from, in words: the UTC time and how long before now it is."""
    if moment is None:
        return "no data"
    from virtuna.store import utcnow

    age = (now or utcnow()) - moment
    if abs(age) < timedelta(hours=1):
        return f"{moment:%Y-%m-%d %H:%M} UTC (current)"
    days = age.total_seconds() / 86400
    ago = f"{days:,.0f} days ago" if days >= 2 else f"{days * 24:,.0f} hours ago"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({ago})"


def dry_run_note(dry_run: bool, kept: str) -> str:
    """The line a job report opens with: whether this run wrote `kept` to the store."""
    if dry_run:
        return (
            f"**Dry run:** everything below is computed, but {kept} not written to the store. "
            "The scheduler and `virtuna jobs run` pass `dry_run=False`."
        )
    return f"**This run wrote to the store:** {kept} kept."


def time_axis(ax: Any, times: Sequence[Any]) -> None:
    """A date x-axis that fits the data: a single day gets a day either side, not the four
    years matplotlib gives one point."""
    import matplotlib.dates as mdates
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(list(times))).dropna()
    if stamps.empty:
        return
    low, high = stamps.min(), stamps.max()
    if high - low < pd.Timedelta(days=1):
        ax.set_xlim(low - pd.Timedelta(days=1), high + pd.Timedelta(days=1))
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
