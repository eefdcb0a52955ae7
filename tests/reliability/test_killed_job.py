"""Defect 8: a killed job leaves no debris.

A runner killed with SIGKILL takes its kernel with it; the next run (or a listing) finds its
"running" row, marks it abandoned with the reason and frees its lock at once, instead of
leaving the job blocked until the lock expires. A run cannot outlive its whole-run timeout, so
its lock (which lasts longer) never expires under it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import nbformat
import psutil

from tests.conftest import REPO
from tests.reliability._job_probe import probe_schedule, write_probe
from virtuna.jobs import scheduler
from virtuna.jobs.runner import Holder, acquire_lock, lock_ttl, reconcile, run_job
from virtuna.store import connect, run, utcnow

SLEEPER = """# Parameters (Papermill overrides these).
db_path = None    # the store
pidfile = ""      # where the kernel writes its pid
sleep_s = 0.0     # how long the kernel then sleeps
spin = False      # instead, hold the GIL in a C call that does not end
"""
SLEEP = """
import os, pathlib, re, time
if pidfile:
    pathlib.Path(pidfile).write_text(str(os.getpid()))
if spin:  # ipykernel's own parent poller is a Python thread: it cannot run meanwhile
    re.match(r"(a+)+$", "a" * 64 + "b")
time.sleep(sleep_s)
"""
RUNNER = """
import sys
from pathlib import Path
from tests.reliability._job_probe import probe_schedule
from virtuna.jobs.runner import run_job
run_job("probe", {"pidfile": sys.argv[2], "spin": True}, db_path=sys.argv[3],
        schedule=probe_schedule(Path(sys.argv[1])), reports_dir=Path(sys.argv[4]))
"""
# How long to wait for a kernel to start on a loaded machine (a bound, never a timing).
BOUND_S = 180


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition: object, what: str, bound_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen within {bound_s} s"
        time.sleep(0.1)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_runner_killed_with_sigkill_takes_its_kernel_and_the_next_run_starts_at_once(
    tmp_path: Path, db_path: Path
) -> None:
    notebook = write_probe(tmp_path / "notebooks", SLEEP, parameters=SLEEPER)
    pidfile = tmp_path / "kernel.pid"
    reports = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kernel = 0
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(notebook), str(pidfile), str(db_path), str(reports)],
        cwd=REPO,
        env=env,
    )
    try:
        _wait_for(
            lambda: (pidfile.is_file() and pidfile.read_text()) or runner.poll() is not None,
            "the kernel's start",
        )
        assert runner.poll() is None, "the runner ended before its kernel slept"
        kernel = int(pidfile.read_text())
        assert not _gone(kernel)
        with connect(db_path) as con:
            row = run(con, "SELECT status, pid, host FROM job_runs")
        assert row == [("running", runner.pid, socket.gethostname())]
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        # The kernel is killed with its runner (at once; the bound only allows for a busy machine).
        _wait_for(lambda: _gone(kernel), "the kernel's end after its runner was killed", 30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if kernel and not _gone(kernel):  # the kernel outlived its runner: end it here
            os.kill(kernel, signal.SIGKILL)

    schedule = probe_schedule(notebook)
    again = run_job(
        "probe", {"sleep_s": 0}, db_path=db_path, schedule=schedule, reports_dir=reports
    )
    assert again.status == "succeeded", again.error
    with connect(db_path) as con:
        rows = run(con, "SELECT id, status, error, finished_at FROM job_runs ORDER BY started_at")
        assert run(con, "SELECT count(*) FROM job_locks") == [(0,)]
    (_, status, error, finished), (newest, *_) = rows
    assert status == "abandoned" and f"pid {runner.pid}" in error and finished is not None
    assert newest == again.id


def _dead_run(db_path: Path, run_id: str, job: str) -> Holder:
    """A lock and a "running" row left by a runner that has exited."""
    dead = Holder(_dead_pid(), socket.gethostname(), None)
    with connect(db_path) as con:
        assert acquire_lock(con, job, run_id, timedelta(hours=1), owner=dead)
        run(
            con,
            "INSERT INTO job_runs (id, job, status, started_at, pid, host) "
            "VALUES (?, ?, 'running', ?, ?, ?)",
            [run_id, job, utcnow(), dead.pid, dead.host],
        )
    return dead


def test_listing_runs_or_the_schedule_reconciles_a_dead_runners_run(db_path: Path) -> None:
    dead = _dead_run(db_path, "dead-run", "calculate-trends")
    with connect(db_path) as con:
        run(
            con,
            "INSERT INTO job_runs (id, job, status, started_at) "
            "VALUES ('lockless-run', 'validate-rules', 'running', ?)",
            [utcnow()],
        )
    listed = _list_runs(db_path)  # the admin API's listing reconciles
    assert {r["id"]: r["status"] for r in listed} == {
        "dead-run": "abandoned",
        "lockless-run": "abandoned",
    }
    errors = {r["id"]: r["error"] for r in listed}
    assert f"pid {dead.pid}" in str(errors["dead-run"])
    assert "lock is gone" in str(errors["lockless-run"])

    _dead_run(db_path, "dead-again", "retrain-ml")
    table = scheduler.schedule_table(db_path=db_path)  # `virtuna schedule list` reconciles
    assert {r["job"]: r["last status"] for r in table}["retrain-ml"] == "abandoned"
    with connect(db_path) as con:
        assert run(con, "SELECT count(*) FROM job_locks") == [(0,)]
        assert reconcile(con) == 0  # nothing left to do


def _list_runs(db_path: Path) -> list[dict[str, object]]:
    """GET /api/jobs on an app over db_path."""
    import asyncio

    import httpx

    from virtuna.config import load_settings
    from virtuna.service import create_app

    app = create_app(load_settings(admin_token="admin-list", apify_token=None), db_path=db_path)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/api/jobs", headers={"Authorization": "Bearer admin-list"})

    response = asyncio.run(go())
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_a_live_holders_lock_is_kept_and_a_dead_or_expired_one_is_taken_over(
    db_path: Path,
) -> None:
    me = Holder.current()
    elsewhere = Holder(4242, "another-host.invalid", None)
    dead = Holder(_dead_pid(), socket.gethostname(), None)
    reused = Holder(os.getpid(), socket.gethostname(), (me.started or 0) - 3600)
    with connect(db_path) as con:
        # A live holder on this host keeps its lock even past its expiry: never two runs.
        assert acquire_lock(con, "a", "live", timedelta(seconds=-1), owner=me)
        assert not acquire_lock(con, "a", "next", timedelta(minutes=5))
        # A holder on another host cannot be asked: its lock holds until it expires.
        assert acquire_lock(con, "b", "remote", timedelta(minutes=5), owner=elsewhere)
        assert not acquire_lock(con, "b", "next", timedelta(minutes=5))
        assert acquire_lock(con, "c", "remote", timedelta(seconds=-1), owner=elsewhere)
        assert acquire_lock(con, "c", "next", timedelta(minutes=5))
        # A dead holder, or a pid now used by another process, frees the lock at once.
        assert acquire_lock(con, "d", "dead", timedelta(hours=1), owner=dead)
        assert acquire_lock(con, "d", "next", timedelta(minutes=5))
        assert acquire_lock(con, "e", "old", timedelta(hours=1), owner=reused)
        assert acquire_lock(con, "e", "next", timedelta(minutes=5))


def test_a_run_cannot_outlive_its_whole_run_timeout_though_no_cell_is_slow(
    tmp_path: Path, db_path: Path
) -> None:
    notebook = write_probe(tmp_path / "notebooks", SLEEP, parameters=SLEEPER)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(SLEEP) for _ in range(59)]  # 60 x 0.5 s = 30 s
    nbformat.write(nb, notebook)
    pidfile = tmp_path / "kernel.pid"
    schedule = probe_schedule(notebook, timeout_s=4)
    assert lock_ttl(schedule.get("probe")) > timedelta(seconds=4)  # the lock outlasts the run
    result = run_job(
        "probe",
        {"pidfile": str(pidfile), "sleep_s": 0.5},
        db_path=db_path,
        schedule=schedule,
        reports_dir=tmp_path / "reports",
    )
    assert result.status == "failed" and "whole-run timeout of 4 s" in (result.error or "")
    if pidfile.is_file():  # the kernel got as far as a cell
        _wait_for(lambda: _gone(int(pidfile.read_text())), "the timed-out kernel's end")
    with connect(db_path) as con:
        assert run(con, "SELECT count(*) FROM job_locks") == [(0,)]
        assert run(con, "SELECT status FROM job_runs") == [("failed",)]
