"""The schedule, the Papermill runner (ledger, locks, failures, index) and the scheduler."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from virtuna.cli import main
from virtuna.constants import LOCKED_EXIT
from virtuna.jobs import scheduler
from virtuna.jobs.runner import Holder, acquire_lock, due_jobs, release_lock, run_job
from virtuna.jobs.schedule import Job, Schedule, load_schedule
from virtuna.notebooks import NOTEBOOK_DIR
from virtuna.store import connect, utcnow

ORIGINAL_CRONS = {
    "calculate-trends": "0 * * * *",
    "scrape-trending": "0 */6 * * *",
    "sync-whop": "0 */12 * * *",
    "refresh-competitors": "0 6 * * *",
    "validate-rules": "0 2 * * *",
    "retrain-ml": "0 3 * * 1",
    "calibration-audit": "0 4 1 * *",
    "collect-outcomes": "30 * * * *",
}


def test_all_eight_jobs_are_scheduled_as_the_original_plus_outcome_collection() -> None:
    schedule = load_schedule()
    assert {name: job.cron for name, job in schedule.jobs.items()} == ORIGINAL_CRONS


def test_every_entry_points_at_something_and_everything_has_an_entry() -> None:
    schedule = load_schedule()
    for job in [*schedule.jobs.values(), *schedule.reports.values()]:
        assert (NOTEBOOK_DIR / f"{job.notebook}.ipynb").is_file(), job.name
    for job in schedule.jobs.values():
        assert callable(job.resolve_function()), job.name
    named_notebooks = {j.notebook for j in [*schedule.jobs.values(), *schedule.reports.values()]}
    assert {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")} == named_notebooks
    job_modules = {
        p.stem for p in Path(importlib.import_module("virtuna.jobs").__path__[0]).glob("*.py")
    } - {"__init__", "schedule", "runner", "scheduler", "airflow"}
    scheduled = {job.function.split(":")[0].rsplit(".", 1)[1] for job in schedule.jobs.values()}
    assert job_modules == scheduled


def _schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> Schedule:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("db_path = None\nmode = 'ok'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, notebooks / "probe.ipynb")
    monkeypatch.setattr("virtuna.notebooks.NOTEBOOK_DIR", notebooks)
    job = Job(name="probe", notebook="probe", cron="0 * * * *", timeout_s=60)
    return Schedule({"probe": job}, {})


PROBE = """
from virtuna.jobs.runner import report_job_status
if mode == "fail":
    raise RuntimeError("the probe was told to fail")
report_job_status("skipped" if mode == "skip" else "succeeded", f"mode {mode}")
"""


def test_a_failing_notebook_leaves_a_failed_run_its_notebook_and_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    reports = tmp_path / "reports"
    result = run_job(
        "probe", {"mode": "fail"}, db_path=db_path, schedule=schedule, reports_dir=reports
    )
    assert result.status == "failed" and "the probe was told to fail" in (result.error or "")
    assert result.notebook is not None and result.notebook.is_file()
    executed = nbformat.read(result.notebook, as_version=4)
    assert any(
        o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", [])
    )
    with connect(db_path) as con:
        row = con.execute("SELECT status, error, output_notebook FROM job_runs").fetchall()[0]
        assert con.execute("SELECT count(*) FROM job_locks").fetchall() == [(0,)]
    assert row[0] == "failed" and "RuntimeError" in row[1] and row[2] == str(result.notebook)
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert "failed" in index and f"probe {result.notebook.parent.name}</a>" in index


def test_skipped_and_succeeded_runs_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    reports = tmp_path / "reports"
    skipped = run_job(
        "probe", {"mode": "skip"}, db_path=db_path, schedule=schedule, reports_dir=reports
    )
    done = run_job("probe", {}, db_path=db_path, schedule=schedule, reports_dir=reports)
    assert (skipped.status, skipped.summary) == ("skipped", "mode skip")
    assert done.status == "succeeded" and done.html is not None and done.html.is_file()


def test_the_cli_exits_non_zero_when_a_job_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path, capsys
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    monkeypatch.setattr("virtuna.jobs.runner.load_schedule", lambda: schedule)
    monkeypatch.setattr("virtuna.jobs.runner.REPORTS_DIR", tmp_path / "reports")
    assert main(["--db", str(db_path), "jobs", "run", "probe", "-p", "mode", "fail"]) == 1
    assert "probe: failed" in capsys.readouterr().out
    assert main(["--db", str(db_path), "jobs", "run", "nope"]) == 2


def test_the_cli_takes_parameters_as_json_and_a_reports_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path, capsys
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    monkeypatch.setattr("virtuna.jobs.runner.load_schedule", lambda: schedule)
    reports = tmp_path / "elsewhere"
    argv = ["--db", str(db_path), "jobs", "run", "probe", "--reports-dir", str(reports)]
    assert main([*argv, "--parameters-json", '{"mode": "skip"}']) == 0
    assert "probe: skipped (mode skip)" in capsys.readouterr().out
    assert (reports / "index.html").is_file() and len(list((reports / "probe").iterdir())) == 1
    # -p overrides the JSON; JSON that is not an object of parameters is refused.
    assert main([*argv, "--parameters-json", '{"mode": "skip"}', "-p", "mode", "fail"]) == 1
    for text in ("{mode: skip}", '["skip"]', '{"db_path": "/elsewhere"}', '{"nope": 1}'):
        assert main([*argv, "--parameters-json", text]) == 2, text
    assert "probe: failed" in capsys.readouterr().out


def test_two_runs_of_one_job_never_overlap_and_a_dead_lock_expires(db_path: Path) -> None:
    with connect(db_path) as con:
        assert acquire_lock(con, "retrain-ml", "run-a", timedelta(minutes=5))
        assert not acquire_lock(con, "retrain-ml", "run-b", timedelta(minutes=5))
        release_lock(con, "retrain-ml", "run-b")  # not the holder: nothing happens
        assert not acquire_lock(con, "retrain-ml", "run-b", timedelta(minutes=5))
        release_lock(con, "retrain-ml", "run-a")
        # An expired lock of a holder that cannot be asked (another host) belongs to a crashed
        # run; a live holder on this host keeps its lock (tests/reliability/test_killed_job.py).
        remote = Holder(4242, "another-host.invalid", None)
        assert acquire_lock(con, "retrain-ml", "run-b", timedelta(seconds=-1), owner=remote)
        assert acquire_lock(con, "retrain-ml", "run-c", timedelta(minutes=5))


def test_a_locked_job_is_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    with connect(db_path) as con:
        acquire_lock(con, "probe", "someone-else", timedelta(minutes=5))
    result = run_job("probe", db_path=db_path, schedule=schedule, reports_dir=tmp_path / "r")
    assert result.status == "locked"
    # From the CLI: a status of its own, which a generated Airflow DAG marks skipped.
    monkeypatch.setattr("virtuna.jobs.runner.load_schedule", lambda: schedule)
    argv = ["--db", str(db_path), "jobs", "run", "probe", "--reports-dir", str(tmp_path / "r")]
    assert main(argv) == LOCKED_EXIT


def test_run_due_catches_up_once_not_once_per_missed_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    schedule = _schedule(tmp_path, monkeypatch, PROBE)
    now = utcnow()
    with connect(db_path) as con:
        assert [j.name for j in due_jobs(schedule, con, now)] == ["probe"]  # never ran
        con.execute(
            "INSERT INTO job_runs (id, job, status, started_at) VALUES "
            "('old', 'probe', 'succeeded', ?)",
            [now - timedelta(hours=5)],
        )
        assert [j.name for j in due_jobs(schedule, con, now)] == ["probe"]  # 5 slots missed
    runs = scheduler.run_due(
        db_path=db_path, now=now, schedule=schedule, reports_dir=tmp_path / "r"
    )
    assert [r.status for r in runs] == ["succeeded"]  # once
    with connect(db_path) as con:
        assert due_jobs(schedule, con, now) == []
        assert [j.name for j in due_jobs(schedule, con, now + timedelta(hours=1))] == ["probe"]


def test_schedule_list_and_crontab(db_path: Path) -> None:
    table = scheduler.schedule_table(db_path=db_path, now=datetime(2026, 11, 29, 1, 0))
    assert len(table) == 8
    assert {r["job"]: r["next run"] for r in table}["retrain-ml"] == "2026-11-30 03:00"
    lines = scheduler.crontab("virtuna").splitlines()
    assert "CRON_TZ=UTC" in lines
    assert any(
        "0 4 1 * * cd" in line and line.endswith("virtuna jobs run calibration-audit")
        for line in lines
    )
    assert "30 * * * * cd" in lines[-1] and lines[-1].endswith("virtuna jobs run collect-outcomes")


@pytest.mark.slow
def test_a_run_by_the_runner_writes_and_keeps_its_logs_and_figures(
    small_store: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    store = tmp_path / "store.duckdb"
    shutil.copy(small_store, store)
    result = run_job("calculate-trends", {"as_of": "latest"}, db_path=store, reports_dir=tmp_path)
    assert result.status == "succeeded", result.error
    with connect(store) as con:
        assert con.execute("SELECT count(*) FROM trending_sounds").fetchall()[0][0] > 0
        (parameters,) = con.execute("SELECT parameters FROM job_runs").fetchall()[0]
    assert json.loads(parameters)["dry_run"] is False  # the runner's default, not the notebook's
    folder = result.notebook.parent
    assert (folder / "log.txt").is_file() and list((folder / "figures").glob("*.png"))
    html = result.html.read_text(encoding="utf-8")
    assert "This run wrote to the store" in html and "job_status" not in html


def test_a_job_without_its_keys_is_skipped_without_a_kernel(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHOP_API_KEY", raising=False)
    started = []
    monkeypatch.setattr("virtuna.jobs.runner.execute_notebook", lambda *a, **k: started.append(a))
    result = run_job("sync-whop", db_path=db_path, reports_dir=tmp_path)
    assert (result.status, started, result.notebook) == ("skipped", [], None)
    assert result.summary == "skipped: WHOP_API_KEY not configured (no kernel started)"
    # Recorded like any run: the ledger and the index show it with its reason.
    with connect(db_path) as con:
        assert con.execute("SELECT status FROM job_runs").fetchall() == [("skipped",)]
    assert "WHOP_API_KEY not configured" in (tmp_path / "index.html").read_text()


def test_a_schedule_entry_naming_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    from virtuna.jobs.schedule import ScheduleError

    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n  sync-whop:\n    cron: '0 * * * *'\n    notebook: sync_whop\n"
        "    needs_settings: [WHOP_KEY_TYPO]\n",
        encoding="utf-8",
    )
    with pytest.raises(ScheduleError, match="WHOP_KEY_TYPO"):
        load_schedule(path)
