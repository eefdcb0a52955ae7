"""The schedule as Airflow DAGs: the generated file holds every job, follows the YAML, and keeps
strings from the schedule as data (Airflow itself is not installed here: `make airflow-check`
loads the file with Airflow's DagBag and runs a job with `airflow dags test`)."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from virtuna.cli import main
from virtuna.constants import LOCKED_EXIT
from virtuna.jobs.airflow import dag_source
from virtuna.jobs.runner import lock_ttl
from virtuna.jobs.schedule import SCHEDULE_FILE, Job, Schedule, ScheduleError, load_schedule
from virtuna.notebooks import ParameterError

HOSTILE = '\'; touch /tmp/pwned; echo "$(id)" `id` {{ var.value.secret }} {% raw %} """\n)'


def _jobs(source: str) -> dict[str, dict[str, Any]]:
    """The JOBS literal of a DAG file, read as data (never executed)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "JOBS":
            return ast.literal_eval(node.value)  # type: ignore[no-any-return]
    raise AssertionError("the DAG file has no JOBS")


def _without_jobs(source: str) -> list[str]:
    """Every top-level statement of a DAG file except the JOBS data."""
    return [
        ast.dump(node)
        for node in ast.parse(source).body
        if not (isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "JOBS")
    ]


def _schedule_file(tmp_path: Path, old: str, new: str) -> Path:
    text = SCHEDULE_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "jobs.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


class _Airflow:
    """Just enough of Airflow's DAG, BashOperator, timetable and `literal` to run a DAG file."""

    def __init__(self) -> None:
        self.dags: list[dict[str, Any]] = []

    def modules(self) -> dict[str, types.ModuleType]:
        recorder = self

        class DAG:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = {**kwargs, "tasks": []}

            def __enter__(self) -> DAG:
                recorder.dags.append(self.kwargs)
                return self

            def __exit__(self, *exc: object) -> None:
                return None

        def bash_operator(**kwargs: Any) -> None:
            recorder.dags[-1]["tasks"].append(kwargs)

        sdk = types.ModuleType("airflow.sdk")
        sdk.DAG = DAG  # type: ignore[attr-defined]
        sdk.CronTriggerTimetable = lambda cron, timezone: (cron, timezone)  # type: ignore[attr-defined]
        sdk.literal = lambda value: ("literal", value)  # type: ignore[attr-defined]
        bash = types.ModuleType("airflow.providers.standard.operators.bash")
        bash.BashOperator = bash_operator  # type: ignore[attr-defined]
        names = ["airflow", "airflow.providers", "airflow.providers.standard"]
        parents = {name: types.ModuleType(name) for name in names}
        operators = types.ModuleType("airflow.providers.standard.operators")
        return {
            **parents,
            "airflow.providers.standard.operators": operators,
            "airflow.providers.standard.operators.bash": bash,
            "airflow.sdk": sdk,
        }


def _run_dag_file(source: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Execute a DAG file against the stand-in Airflow; the DAGs it declared, with their tasks."""
    airflow = _Airflow()
    for name, module in airflow.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, "virtuna_jobs.py", "exec"), {"__name__": "virtuna_jobs"})
    return airflow.dags


def test_the_dag_file_holds_every_job_with_its_cron_timeout_and_parameters() -> None:
    schedule = load_schedule()
    source = dag_source(schedule, virtuna="/opt/virtuna/.venv/bin/virtuna")
    jobs = _jobs(source)
    assert list(jobs) == list(schedule.jobs)  # all eight, and no on-demand report
    for name, job in schedule.jobs.items():
        entry = jobs[name]
        assert (entry["cron"], entry["timeout_s"]) == (job.cron, job.timeout_s), name
        assert entry["parameters"] == job.checked_parameters() == job.parameters, name
        # The runner stops the kernel after timeout_s; Airflow only kills it past its lock.
        assert entry["task_timeout_s"] == lock_ttl(job).total_seconds() > job.timeout_s
    assert "/opt/virtuna/.venv/bin/virtuna" in source
    compile(source, "virtuna_jobs.py", "exec")


def test_each_dag_keeps_the_jobs_rules_and_calls_the_projects_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = load_schedule()
    source = dag_source(
        schedule, virtuna="/opt/v/bin/virtuna", reports_dir=tmp_path / "r", queue="store-host"
    )
    dags = {d["dag_id"]: d for d in _run_dag_file(source, monkeypatch)}
    assert list(dags) == [f"virtuna-{name}" for name in schedule.jobs]
    trends = dags["virtuna-calculate-trends"]
    assert trends["schedule"] == ("0 * * * *", "UTC")
    assert (trends["catchup"], trends["max_active_runs"]) == (False, 1)
    assert trends["params"] == {"as_of": None, "window_hours": 48, "top_n": 20}
    (task,) = trends["tasks"]
    assert (task["retries"], task["skip_on_exit_code"], task["queue"]) == (
        0,
        LOCKED_EXIT,
        "store-host",
    )
    assert (
        task["execution_timeout"].total_seconds()
        == lock_ttl(schedule.jobs["calculate-trends"]).total_seconds()
    )
    kind, command = task["bash_command"]
    assert kind == "literal"  # Jinja leaves the command as it is
    assert shlex.split(command) == [
        "/opt/v/bin/virtuna",
        "jobs",
        "run",
        "calculate-trends",
        "--reports-dir",
        str(tmp_path / "r"),
        "--parameters-json",
        "$JOB_PARAMETERS",
    ]
    assert task["env"] == {"JOB_PARAMETERS": "{{ params | tojson }}"} and task["append_env"]


def test_changing_the_schedule_changes_the_dags(tmp_path: Path) -> None:
    before = dag_source(load_schedule())
    path = _schedule_file(
        tmp_path,
        '    cron: "0 * * * *"\n    function: virtuna.jobs.calculate_trends:calculate_trends\n'
        "    notebook: trends\n    parameters: {as_of: null, window_hours: 48, top_n: 20}\n"
        "    timeout_s: 900\n",
        '    cron: "15 */2 * * *"\n    function: virtuna.jobs.calculate_trends:calculate_trends\n'
        "    notebook: trends\n    parameters: {as_of: latest, window_hours: 24, top_n: 5}\n"
        "    timeout_s: 1200\n",
    )
    after = _jobs(dag_source(load_schedule(path)))
    assert after["calculate-trends"]["cron"] == "15 */2 * * *"
    assert after["calculate-trends"]["timeout_s"] == 1200
    assert after["calculate-trends"]["parameters"] == {
        "as_of": "latest",
        "window_hours": 24,
        "top_n": 5,
    }
    assert {k: v for k, v in after.items() if k != "calculate-trends"} == {
        k: v for k, v in _jobs(before).items() if k != "calculate-trends"
    }


def test_a_hostile_parameter_name_or_job_name_never_reaches_a_dag(tmp_path: Path) -> None:
    name = "window_hours'); import os; os.system('id'); ('"
    path = _schedule_file(tmp_path, "window_hours: 48", f'"{name}": 48')
    with pytest.raises(ScheduleError, match="is not declared by the notebook"):
        load_schedule(path)
    path = _schedule_file(tmp_path, "  calculate-trends:\n", '  "x; rm -rf / #":\n')
    with pytest.raises(ScheduleError, match="is not letters, digits"):
        load_schedule(path)
    # The generator checks again: a Job built in code is held to its notebook too.
    job = Job(name="calculate-trends", notebook="trends", cron="0 * * * *", parameters={name: 1})
    with pytest.raises(ParameterError):
        dag_source(Schedule({job.name: job}, {}))


def test_a_hostile_parameter_value_stays_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _schedule_file(
        tmp_path, "as_of: null, window_hours: 48", f"as_of: {json.dumps(HOSTILE)}, window_hours: 48"
    )
    schedule = load_schedule(path)  # text for a text parameter: the notebook's own check decides
    stub = tmp_path / "virtuna"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    stub.chmod(0o755)
    source = dag_source(schedule, virtuna=stub)
    clean = dag_source(load_schedule(), virtuna=stub)
    # The value is in the JOBS data, exactly, and changes nothing else of the file.
    assert _jobs(source)["calculate-trends"]["parameters"]["as_of"] == HOSTILE
    assert _without_jobs(source) == _without_jobs(clean)
    (trends,) = [d for d in _run_dag_file(source, monkeypatch) if d["dag_id"].endswith("-trends")]
    _, command = trends["tasks"][0]["bash_command"]
    assert "pwned" not in command
    # Run as Airflow would, with the params rendered to JSON in the environment: the shell
    # passes the value through as one argument and runs nothing of it.
    rendered = json.dumps(trends["params"])
    out = subprocess.run(
        ["bash", "-c", command],
        env={"JOB_PARAMETERS": rendered, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[:3] == ["jobs", "run", "calculate-trends"]
    assert json.loads("\n".join(out[4:]))["as_of"] == HOSTILE
    assert not Path("/tmp/pwned").exists()


def test_the_cli_prints_or_writes_the_dag_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "airflow-dag", "--virtuna", "/x/virtuna"]) == 0
    printed = capsys.readouterr().out
    assert printed == dag_source(load_schedule(), virtuna="/x/virtuna")
    out = tmp_path / "dags" / "virtuna_jobs.py"
    assert main(["schedule", "airflow-dag", "--out", str(out), "--queue", "store-host"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote 8 DAGs to {out}: virtuna-calculate-trends, ")
    assert "'queue': 'store-host'" in out.read_text(encoding="utf-8")
