"""Run jobs: a notebook plus parameters in, an immutable executed notebook and HTML out.

`run_job` executes a job's notebook with Papermill into reports/<job>/<UTC time>/, records
the run in `job_runs` (start, end, status, parameters, output paths, error), holds the job's
lock in `job_locks` so two runs of one job never overlap (a lock past its expiry belongs to a
crashed run and is taken over), logs with the job as the stage, reports a failure to Sentry,
keeps the failed notebook (Papermill marks the failing cell), and rewrites reports/index.html.

A notebook tells the runner it skipped (e.g. no API key) by calling `report_job_status` in its
last cell; the runner passes the place to write it in VIRTUNA_JOB_STATUS_FILE.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import sentry_sdk

from virtuna.config import PROJECT_ROOT, get_settings
from virtuna.jobs.schedule import Job, Schedule, load_schedule
from virtuna.log import get_logger, stage
from virtuna.notebooks import execute_notebook
from virtuna.store import connect, run, transaction, utcnow

log = get_logger(__name__)

REPORTS_DIR = PROJECT_ROOT / "reports"
STATUS_ENV = "VIRTUNA_JOB_STATUS_FILE"
STATUSES = ("succeeded", "skipped", "failed")


@dataclass(frozen=True)
class JobRun:
    """One run of a job, as recorded in job_runs."""

    id: str
    job: str
    status: str  # succeeded, skipped, failed, locked
    started_at: datetime
    finished_at: datetime | None
    notebook: Path | None
    html: Path | None
    error: str | None = None
    summary: str | None = None


def report_job_status(status: str, summary: str = "") -> None:
    """From a job notebook: tell the runner how the job ended (a no-op when run by hand)."""
    if status not in STATUSES:
        raise ValueError(f"job status must be one of {STATUSES}, got {status!r}")
    target = os.environ.get(STATUS_ENV)
    if target:
        Path(target).write_text(json.dumps({"status": status, "summary": summary}), "utf-8")


def acquire_lock(con: duckdb.DuckDBPyConnection, job: str, holder: str, ttl: timedelta) -> bool:
    """Take the job's lock unless a live run holds it (an expired lock is taken over)."""
    now = utcnow()
    with transaction(con):
        run(con, "DELETE FROM job_locks WHERE job = ? AND expires_at < ?", [job, now])
        taken = run(
            con,
            "INSERT INTO job_locks VALUES (?, ?, ?, ?) ON CONFLICT (job) DO NOTHING "
            "RETURNING holder",
            [job, holder, now, now + ttl],
        )
    return bool(taken)


def release_lock(con: duckdb.DuckDBPyConnection, job: str, holder: str) -> None:
    """Give the lock back (only the holder can)."""
    run(con, "DELETE FROM job_locks WHERE job = ? AND holder = ?", [job, holder])


def run_job(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    db_path: Path | str | None = None,
    reports_dir: Path | None = None,
    schedule: Schedule | None = None,
) -> JobRun:
    """Run one job or report now (reports under reports/ unless told otherwise)."""
    reports_dir = reports_dir if reports_dir is not None else REPORTS_DIR
    job = (schedule or load_schedule()).get(name)
    db = Path(db_path if db_path is not None else get_settings().virtuna_db_path).resolve()
    values = {**job.parameters, **(parameters or {}), "db_path": str(db)}
    run_id = uuid.uuid4().hex[:12]
    started = utcnow()
    folder = reports_dir / job.name / f"{started:%Y%m%dT%H%M%SZ}-{run_id[:4]}"
    with connect(db) as con:
        if not acquire_lock(con, job.name, run_id, timedelta(seconds=job.timeout_s + 60)):
            log.warning("job already running", job=job.name)
            return JobRun(
                run_id,
                job.name,
                "locked",
                started,
                utcnow(),
                None,
                None,
                "another run of this job holds its lock",
            )
        run(
            con,
            "INSERT INTO job_runs (id, job, status, parameters, started_at) "
            "VALUES (?, ?, 'running', ?, ?)",
            [run_id, job.name, json.dumps(values, default=str), started],
        )
    status_file = folder / "status.json"
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(STATUS_ENV)
    os.environ[STATUS_ENV] = str(status_file)
    error: str | None = None
    try:
        with stage(f"job:{job.name}", run_id=run_id):
            result = execute_notebook(job.notebook, folder, values, timeout_s=job.timeout_s)
        error = result.error
        notebook, html_path = result.notebook, result.html
    except Exception as exc:  # the kernel died, the notebook is missing...: a failed run
        error = f"{type(exc).__name__}: {exc}"
        notebook, html_path = None, None
    finally:
        if previous is None:
            os.environ.pop(STATUS_ENV, None)
        else:
            os.environ[STATUS_ENV] = previous
    reported = json.loads(status_file.read_text("utf-8")) if status_file.is_file() else {}
    status = "failed" if error else reported.get("status", "succeeded")
    summary = reported.get("summary")
    finished = utcnow()
    with connect(db) as con:
        run(
            con,
            "UPDATE job_runs SET status = ?, finished_at = ?, duration_ms = ?, error = ?, "
            "output_notebook = ?, output_html = ? WHERE id = ?",
            [
                status,
                finished,
                (finished - started).total_seconds() * 1000,
                error,
                str(notebook) if notebook else None,
                str(html_path) if html_path else None,
                run_id,
            ],
        )
        release_lock(con, job.name, run_id)
        write_index(con, reports_dir)
    if status == "failed":
        log.error("job failed", job=job.name, error=error, notebook=str(notebook))
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job", job.name)
            sentry_sdk.capture_message(f"job {job.name} failed: {error}", level="error")
    else:
        log.info("job finished", job=job.name, status=status, summary=summary)
    return JobRun(run_id, job.name, status, started, finished, notebook, html_path, error, summary)


def last_runs(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[datetime, str]]:
    """Each job's latest run: (started_at, status)."""
    rows = run(
        con,
        "SELECT job, max(started_at), arg_max(status, started_at) FROM job_runs GROUP BY job",
    )
    return {str(r[0]): (r[1], str(r[2])) for r in rows}  # type: ignore[misc]


def due_jobs(schedule: Schedule, con: duckdb.DuckDBPyConnection, now: datetime) -> list[Job]:
    """Jobs whose cron time passed since their last run (once, however many slots passed)."""
    latest = last_runs(con)
    due = []
    for job in schedule.jobs.values():
        slot = job.previous_time(now)
        last = latest.get(job.name)
        if slot is not None and (last is None or last[0] < slot):
            due.append(job)
    return due


def write_index(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> Path:
    """reports/index.html: every run, newest first, with a link to its HTML report."""
    rows = run(
        con,
        "SELECT job, started_at, status, duration_ms, output_html, error FROM job_runs "
        "ORDER BY started_at DESC",
    )
    body = []
    for job, started, status, duration, output, error in rows:
        link = ""
        if output:
            target = Path(str(output))
            relative = os.path.relpath(target, reports_dir) if target.is_absolute() else target
            link = f'<a href="{html.escape(str(relative))}">report</a>'
        seconds = f"{float(duration) / 1000:.1f} s" if duration is not None else ""  # type: ignore[arg-type]
        body.append(
            f'<tr class="{html.escape(str(status))}"><td>{html.escape(str(job))}</td>'
            f"<td>{started:%Y-%m-%d %H:%M:%S}</td><td>{html.escape(str(status))}</td>"
            f"<td>{seconds}</td><td>{link}</td>"
            f"<td>{html.escape(str(error or ''))[:300]}</td></tr>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Virtuna reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}
tr.failed td {{ background: #fde8e8; }} tr.skipped td {{ color: #777; }}
</style></head><body>
<h1>Virtuna reports</h1>
<p>Every job run, newest first (times in UTC). Generated {utcnow():%Y-%m-%d %H:%M:%S}.</p>
<table><thead><tr><th>job</th><th>started</th><th>status</th><th>duration</th><th>report</th>
<th>error</th></tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
    reports_dir.mkdir(parents=True, exist_ok=True)
    index = reports_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
