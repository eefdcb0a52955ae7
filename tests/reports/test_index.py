"""reports/index.html: each job's latest run with why, duration and parameters, then history."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from tests.conftest import external_references
from virtuna.jobs.runner import INDEX_HISTORY, write_index
from virtuna.store import connect


def _run(con, run_id: str, job: str, started: str, status: str, reports: Path, **extra) -> None:
    folder = reports / job / f"{datetime.fromisoformat(started):%Y%m%dT%H%M%S}-{run_id[:4]}"
    folder.mkdir(parents=True)
    (folder / "n.html").write_text("<html></html>", encoding="utf-8")
    if "summary" in extra:
        (folder / "status.json").write_text(
            json.dumps({"status": status, "summary": extra["summary"]}), encoding="utf-8"
        )
    con.execute(
        "INSERT INTO job_runs (id, job, status, parameters, started_at, duration_ms, "
        "output_notebook, output_html, error) VALUES (?, ?, ?, ?, ?, 1500, ?, ?, ?)",
        [
            run_id,
            job,
            status,
            json.dumps(extra.get("parameters", {})),
            datetime.fromisoformat(started),
            str(folder / "n.ipynb"),
            str(folder / "n.html"),
            extra.get("error"),
        ],
    )


def test_the_index_shows_each_jobs_latest_run_and_why_then_the_history(
    db_path: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    with connect(db_path) as con:
        first = {"as_of": "latest", "db_path": "/x.duckdb"}
        _run(con, "aaaa1", "calculate-trends", "2026-01-01T01:00:00", "succeeded", reports,
             summary="12 sounds", parameters=first)  # fmt: skip
        _run(con, "bbbb2", "calculate-trends", "2026-01-02T01:00:00", "skipped", reports,
             summary="skipped: no <posts>", parameters={"dry_run": False})  # fmt: skip
        _run(con, "cccc3", "retrain-ml", "2026-01-01T03:00:00", "failed", reports,
             error="ValueError: boom")  # fmt: skip
        page = write_index(con, reports).read_text(encoding="utf-8")
    latest, history = page.split("<h2>History</h2>")
    assert "calculate-trends 20260102T010000-bbbb</a>" in latest  # named after job and run
    assert "calculate-trends 20260101T010000-aaaa</a>" not in latest
    assert "skipped: no &lt;posts&gt;" in latest  # why, escaped
    assert "ValueError: boom" in latest and "1.5 s" in latest
    assert "dry_run=false" in latest
    assert history.count("<tr class=") == 3 and "12 sounds" in history
    assert "as_of=latest" in history and "/x.duckdb" not in history
    assert 'href="calculate-trends/20260102T010000-bbbb/n.html"' in latest
    assert ">report</a>" not in page and external_references(page) == []


def test_the_history_is_capped_and_says_how_many_runs_are_left_out(
    db_path: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    with connect(db_path) as con:
        con.execute(
            "INSERT INTO job_runs (id, job, status, started_at) SELECT 'r' || i, 'probe', "
            "'succeeded', TIMESTAMP '2026-01-01' + to_minutes(i) FROM range(?) t(i)",
            [INDEX_HISTORY + 5],
        )
        page = write_index(con, reports).read_text(encoding="utf-8")
    assert "5 older runs are recorded" in page
