"""Run jobs: a notebook plus parameters in, an immutable executed notebook and HTML out.

`run_job` executes a job's notebook with Papermill into reports/<job>/<UTC time>/, records
the run in `job_runs` (start, end, status, parameters, output paths, error, the runner's pid and
host), holds the job's lock in `job_locks` so two runs of one job never overlap, logs with the
job as the stage, reports a failure to Sentry, keeps the failed notebook (Papermill marks the
failing cell), and rewrites reports/index.html.

A run that was killed leaves a lock and a "running" row behind. `reconcile` (called whenever a
run starts and whenever runs are listed or the schedule looks for due jobs) frees a lock whose
holder is gone and marks its run "abandoned" with the reason. A holder on this host is alive
while its process is (pid plus start time, so a reused pid does not count); a holder on another
host cannot be asked, and its lock is trusted until it expires. The lock outlasts the whole-run
timeout that `execute_notebook` enforces, so it cannot expire under a live run. The kernel
dies with its runner.

A notebook tells the runner it skipped (e.g. no API key) by calling `report_job_status` in its
last cell, which writes status.json in the run folder (the kernel knows it: VIRTUNA_RUN_DIR).

A job notebook opened by hand is a dry run (`dry_run=True` by default: it computes and shows,
and writes nothing); the runner passes `dry_run=False` unless told otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psutil
import sentry_sdk

from virtuna.config import get_settings
from virtuna.constants import REPORTS_DIR
from virtuna.jobs.schedule import Job, Schedule, load_schedule
from virtuna.log import get_logger, stage
from virtuna.notebooks import execute_notebook, notebook_parameters
from virtuna.reports import run_dir
from virtuna.reports.index import STATUS_FILE, index_row, render_index
from virtuna.store import connect, run, transaction, utcnow

log = get_logger(__name__)

STATUSES = ("succeeded", "skipped", "failed")
# After the whole-run timeout the runner still stops the kernel, renders the HTML and waits for
# the store to record the end; the lock lasts that much longer (plus the store's lock timeout).
RECORD_GRACE_S = 120
INDEX_HISTORY = 300  # runs listed in the index's history (all are in job_runs)
DRY_RUN = "dry_run"  # the parameter of a job notebook that writes to the store


@dataclass(frozen=True)
class JobRun:
    """One run of a job, as recorded in job_runs."""

    id: str
    job: str
    status: str  # succeeded, skipped, failed, locked (abandoned ones are found by reconcile)
    started_at: datetime
    finished_at: datetime | None
    notebook: Path | None
    html: Path | None
    error: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class Holder:
    """The process that holds a lock: pid, host and the process's start time (epoch seconds)."""

    pid: int
    host: str
    started: float | None

    @classmethod
    def current(cls) -> Holder:
        """This process."""
        return cls(os.getpid(), socket.gethostname(), _process_started(os.getpid()))

    def alive(self) -> bool | None:
        """Whether the holder runs; None when that cannot be told (it is on another host)."""
        if self.host != socket.gethostname():
            return None
        started = _process_started(self.pid)
        if started is None:
            return False
        # A pid reused by a later process is not the holder.
        return self.started is None or abs(started - self.started) < 1.0


def _process_started(pid: int) -> float | None:
    """When process pid started (epoch seconds); None when it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def report_job_status(status: str, summary: str = "") -> None:
    """From a job notebook: tell the runner how the job ended (a no-op when run by hand)."""
    if status not in STATUSES:
        raise ValueError(f"job status must be one of {STATUSES}, got {status!r}")
    folder = run_dir()
    if folder is not None:
        _write_status(folder, status, summary)


def _write_status(folder: Path, status: str, summary: str) -> None:
    (folder / STATUS_FILE).write_text(json.dumps({"status": status, "summary": summary}), "utf-8")


def _gone(lock: tuple[Any, ...], now: datetime) -> str | None:
    """Why a job_locks row (holder, pid, host, process_started, expires_at) is dead, or None."""
    _, pid, host, started, expires = lock
    alive = Holder(int(pid), str(host), started).alive() if pid is not None else None
    if alive is False:
        return f"its runner (pid {pid} on {host}) is gone"
    if alive is None and expires < now:
        return f"its lock expired at {expires:%Y-%m-%d %H:%M:%S} UTC"
    return None


def _free_dead_lock(con: duckdb.DuckDBPyConnection, job: str, now: datetime) -> str | None:
    rows = run(
        con,
        "SELECT holder, pid, host, process_started, expires_at FROM job_locks WHERE job = ?",
        [job],
    )
    reason = _gone(rows[0], now) if rows else None
    if reason:
        run(con, "DELETE FROM job_locks WHERE job = ? AND holder = ?", [job, rows[0][0]])
        _abandon(con, str(rows[0][0]), reason, now)
    return reason


def _abandon(con: duckdb.DuckDBPyConnection, run_id: str, reason: str, now: datetime) -> None:
    run(
        con,
        "UPDATE job_runs SET status = 'abandoned', finished_at = ?, error = ?, "
        "duration_ms = epoch_ms(?::TIMESTAMP) - epoch_ms(started_at) "
        "WHERE id = ? AND status = 'running'",
        [now, f"abandoned: {reason}", now, run_id],
    )


def acquire_lock(
    con: duckdb.DuckDBPyConnection,
    job: str,
    holder: str,
    ttl: timedelta,
    *,
    owner: Holder | None = None,
) -> bool:
    """Take the job's lock unless a live run holds it (a dead holder's lock is freed at once)."""
    owner = owner or Holder.current()
    now = utcnow()
    try:
        with transaction(con):
            reason = _free_dead_lock(con, job, now)
            taken = run(
                con,
                "INSERT INTO job_locks (job, holder, acquired_at, expires_at, pid, host, "
                "process_started) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job) DO NOTHING "
                "RETURNING holder",
                [job, holder, now, now + ttl, owner.pid, owner.host, owner.started],
            )
    except duckdb.TransactionException:  # another thread of this process took it just now
        return False
    if reason:
        log.warning("freed the lock of a dead run", job=job, reason=reason)
    return bool(taken)


def release_lock(con: duckdb.DuckDBPyConnection, job: str, holder: str) -> None:
    """Give the lock back (only the holder can)."""
    run(con, "DELETE FROM job_locks WHERE job = ? AND holder = ?", [job, holder])


def reconcile(con: duckdb.DuckDBPyConnection) -> int:
    """Free the locks of dead runs and mark every run left "running" without a lock abandoned."""
    now = utcnow()
    try:
        with transaction(con):
            for (job,) in run(con, "SELECT job FROM job_locks"):
                _free_dead_lock(con, str(job), now)
            orphans = run(
                con,
                "SELECT id FROM job_runs r WHERE status = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM job_locks l WHERE l.holder = r.id)",
            )
            for (run_id,) in orphans:
                _abandon(con, str(run_id), "its runner stopped and its lock is gone", now)
    except duckdb.TransactionException:  # another thread of this process reconciles now
        return 0
    return len(orphans)


def lock_ttl(job: Job) -> timedelta:
    """How long a run's lock lasts: beyond the whole-run timeout and recording the end."""
    grace = RECORD_GRACE_S + get_settings().virtuna_db_lock_timeout_s
    return timedelta(seconds=job.timeout_s + grace)


def run_job(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    db_path: Path | str | None = None,
    reports_dir: Path | None = None,
    schedule: Schedule | None = None,
) -> JobRun:
    """Run one job or report now (reports under reports/ unless told otherwise).

    Raises ParameterError (a ValueError) before anything runs when a parameter is not one the
    notebook declares or its value is not plain data of the declared type.
    """
    reports_dir = reports_dir if reports_dir is not None else REPORTS_DIR
    job = (schedule or load_schedule()).get(name)
    db = Path(db_path if db_path is not None else get_settings().virtuna_db_path).resolve()
    values = {**job.checked_parameters(parameters), "db_path": str(db)}
    if DRY_RUN in notebook_parameters(job.notebook):
        values = {DRY_RUN: False, **values}  # a scheduled run writes, unless told not to
    run_id = uuid.uuid4().hex[:12]
    started = utcnow()
    folder = reports_dir / job.name / f"{started:%Y%m%dT%H%M%SZ}-{run_id[:4]}"
    owner = Holder.current()
    with connect(db) as con:
        reconcile(con)
        if not acquire_lock(con, job.name, run_id, lock_ttl(job), owner=owner):
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
            "INSERT INTO job_runs (id, job, status, parameters, started_at, pid, host) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?)",
            [run_id, job.name, json.dumps(values, default=str), started, owner.pid, owner.host],
        )
    status_file = folder / STATUS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    error: str | None = "the runner was interrupted"  # unless the run gets further
    notebook: Path | None = None
    html_path: Path | None = None
    missing = job.missing_settings()
    try:
        if missing:
            # Nothing to do without them: recorded as skipped without starting a kernel.
            names = ", ".join(missing)
            _write_status(folder, "skipped", f"skipped: {names} not configured (no kernel started)")
            error = None
        else:
            with stage(f"job:{job.name}", run_id=run_id):
                result = execute_notebook(job.notebook, folder, values, timeout_s=job.timeout_s)
            error = result.error
            notebook, html_path = result.notebook, result.html
    except Exception as exc:  # the kernel died, the notebook is missing...: a failed run
        error = f"{type(exc).__name__}: {exc}"
    finally:
        reported = json.loads(status_file.read_text("utf-8")) if status_file.is_file() else {}
        status = "failed" if error else reported.get("status", "succeeded")
        summary = reported.get("summary")
        finished = utcnow()
        with connect(db) as con:
            run(
                con,
                "UPDATE job_runs SET status = ?, finished_at = ?, duration_ms = ?, error = ?, "
                "output_notebook = ?, output_html = ?, summary = ? WHERE id = ?",
                [
                    status,
                    finished,
                    (finished - started).total_seconds() * 1000,
                    error,
                    str(notebook) if notebook else None,
                    str(html_path) if html_path else None,
                    summary,
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
    reconcile(con)
    latest = last_runs(con)
    due = []
    for job in schedule.jobs.values():
        slot = job.previous_time(now)
        last = latest.get(job.name)
        if slot is not None and (last is None or last[0] < slot):
            due.append(job)
    return due


def write_index(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> Path:
    """reports/index.html: each job's latest run, then the newest INDEX_HISTORY runs."""
    columns = (
        "job, id, started_at, status, duration_ms, parameters, output_notebook, output_html, "
        "error, summary"
    )
    names = [c.strip() for c in columns.split(",")]
    latest = run(
        con,
        f"SELECT {columns} FROM job_runs "
        "QUALIFY row_number() OVER (PARTITION BY job ORDER BY started_at DESC, id) = 1",
    )
    history = run(
        con, f"SELECT {columns} FROM job_runs ORDER BY started_at DESC, id LIMIT ?", [INDEX_HISTORY]
    )
    ((total,),) = run(con, "SELECT count(*) FROM job_runs")
    store = run(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    page = render_index(
        [index_row(dict(zip(names, r, strict=True)), reports_dir) for r in latest],
        [index_row(dict(zip(names, r, strict=True)), reports_dir) for r in history],
        store=str(store[0][0]) if store and store[0][0] else "memory",
        generated=utcnow(),
        older=int(total) - len(history),  # type: ignore[call-overload]
    )
    reports_dir.mkdir(parents=True, exist_ok=True)
    index = reports_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
