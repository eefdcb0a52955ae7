"""make screenshots: every report, the index, /docs and /redoc through a headless browser."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from virtuna.reports import screenshots

# A stand-in for Chromium: records its arguments and writes the PNG it is asked for.
FAKE_BROWSER = """#!/bin/sh
echo "$@" >> "${0%/*}/calls.txt"
for argument in "$@"; do
  case "$argument" in --screenshot=*) printf 'PNG' > "${argument#--screenshot=}";; esac
done
"""


def test_without_chromium_it_says_so_and_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert screenshots.find_browser() is None
    with pytest.raises(screenshots.BrowserMissing, match="install Debian's `chromium`"):
        screenshots.take_screenshots(tmp_path, tmp_path / "out")
    assert screenshots.main(["--reports-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "screenshots").exists()


def test_every_report_and_the_docs_are_shot_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    browser = bin_dir / "chromium"
    browser.write_text(FAKE_BROWSER, encoding="utf-8")
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    reports = tmp_path / "reports"
    (reports / "calculate-trends" / "20260101T000000Z-abcd").mkdir(parents=True)
    (reports / "calculate-trends" / "20260101T000000Z-abcd" / "trends.html").write_text("<p>x</p>")
    (reports / "index.html").write_text("<p>index</p>")
    taken = screenshots.take_screenshots(reports, tmp_path / "shots")
    names = sorted(p.relative_to(tmp_path / "shots").as_posix() for p in taken)
    assert names == [
        "calculate-trends/20260101T000000Z-abcd.png",
        "docs.png",
        "index.png",
        "redoc.png",
    ]
    assert all(p.read_bytes() == b"PNG" for p in taken)
    calls = (bin_dir / "calls.txt").read_text().splitlines()
    assert all("--headless" in c and "EXCLUDE 127.0.0.1" in c for c in calls)
    assert any("file://" in c for c in calls) and any("http://127.0.0.1:" in c for c in calls)
