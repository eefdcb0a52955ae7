"""Defect 9 (schedule): a bad schedule file is one line and exit 2 from the CLI, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtuna.cli import main
from virtuna.jobs.schedule import load_schedule

GOOD = """jobs:
  calculate-trends:
    cron: "0 * * * *"
    notebook: trends
    parameters: {as_of: null, window_hours: 48}
"""
CASES = {
    "not-yaml": ("jobs: [calculate-trends\n  cron: :\n", "cannot be read"),
    "bad-cron": (GOOD.replace("0 * * * *", "61 * * * *"), "calculate-trends has no valid cron"),
    "words-for-cron": (GOOD.replace("0 * * * *", "every hour"), "no valid cron"),
    "missing-cron": (GOOD.replace('    cron: "0 * * * *"\n', ""), "no valid cron"),
    "unknown-setting": (GOOD + "    retries: 3\n", "unknown settings ['retries']"),
    "no-notebook": (GOOD.replace("    notebook: trends\n", ""), "names no notebook"),
    "missing-notebook": (GOOD.replace("notebook: trends", "notebook: nope"), "nope.ipynb"),
    "entry-not-a-mapping": ("jobs:\n  calculate-trends: 5\n", "must be a mapping"),
    "jobs-not-a-mapping": ("jobs: [a, b]\n", "`jobs` must be a mapping"),
    "bad-timeout": (GOOD + "    timeout_s: soon\n", "timeout_s must be a positive"),
    "undeclared-parameter": (GOOD.replace("window_hours", "window_days"), "'window_days'"),
    "wrong-type": (
        GOOD.replace("48", "forty-eight"),
        "'window_hours' must be a whole number, got text",
    ),
    "document-not-a-mapping": ("- calculate-trends\n", "must be a mapping"),
    "name-with-shell": (
        GOOD.replace("  calculate-trends:", "  '$(id); ../x':"),
        "job name '$(id); ../x' is not letters, digits",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_schedule_file_is_one_line_and_exit_2(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = CASES[case]
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr("virtuna.jobs.schedule.SCHEDULE_FILE", path)
    monkeypatch.setattr(load_schedule, "__defaults__", (path,))
    for argv in (["schedule", "list"], ["schedule", "run-due"], ["jobs", "run", "x"]):
        assert main(["--db", str(tmp_path / "s.duckdb"), *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("virtuna: error: "), (argv, err)
        assert message in err[0] and "jobs.yaml" in err[0], (argv, err[0])


def test_the_shipped_schedule_file_loads() -> None:
    schedule = load_schedule()
    assert len(schedule.jobs) == 8 and len(schedule.reports) == 3
