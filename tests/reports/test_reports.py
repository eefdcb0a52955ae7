"""What report notebooks share: figures saved in the run folder, tables, dated titles, axes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from virtuna import reports


def test_a_figure_is_saved_under_the_run_folder_only_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    monkeypatch.delenv(reports.RUN_DIR_ENV, raising=False)
    assert reports.figure(fig, "by_hand") is None
    monkeypatch.setenv(reports.RUN_DIR_ENV, str(tmp_path / "run"))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    saved = reports.figure(fig, "line")
    assert saved == tmp_path / "run" / "figures" / "line.png"
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_start_sends_the_logs_to_the_run_folder_not_to_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    from virtuna.log import get_logger, reset_logging

    monkeypatch.setenv(reports.RUN_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(reports, "_log_stream", None)
    try:
        reports.start()
        get_logger("virtuna.test").warning("calibration drift", ece=0.28)
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
    finally:
        reports._log_stream.close()  # type: ignore[union-attr]
        reset_logging()
    logged = (tmp_path / reports.LOG_FILE).read_text(encoding="utf-8")
    assert "calibration drift" in logged and "a library's warning" in logged
    assert "calibration drift" not in capsys.readouterr().err


def test_table_hides_the_index_and_formats_by_type() -> None:
    frame = pd.DataFrame(
        {"n": [1234567], "share": [0.12345], "when": [pd.Timestamp("2025-05-24 21:52:45")]},
        index=[42],
    )
    html = reports.table(frame, {"share": "{:.0%}"}).to_html()
    assert "1,234,567" in html and "12%" in html and "2025-05-24 21:52" in html
    assert ">42<" not in html  # the raw index is not shown


def test_data_time_says_how_old_the_data_is() -> None:
    now = datetime(2026, 1, 1, 12, 0)
    assert reports.data_time(now - timedelta(minutes=5), now=now).endswith("(current)")
    assert "(20 days ago)" in reports.data_time(now - timedelta(days=20), now=now)
    assert "(5 hours ago)" in reports.data_time(now - timedelta(hours=5), now=now)
    assert reports.data_time(None) == "no data"


def test_the_dry_run_line_says_whether_the_run_wrote() -> None:
    assert "not written" in reports.dry_run_note(True, "the snapshot is")
    assert "wrote" in reports.dry_run_note(False, "the snapshot is")


def test_a_time_axis_with_one_day_spans_days_not_years() -> None:
    fig, ax = plt.subplots()
    day = pd.Timestamp("2025-05-24")
    ax.plot([day], [0.6], "o")
    reports.time_axis(ax, [day])
    low, high = (mdates.num2date(x).replace(tzinfo=None) for x in ax.get_xlim())
    assert high - low == timedelta(days=2)
    plt.close(fig)
