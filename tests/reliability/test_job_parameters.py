"""Defect 1: job parameters are data checked against the notebook, never code.

Every path that starts a job (the admin API, the CLI and the schedule file) accepts only the
parameters the job's notebook declares, each value plain data of the declared type; anything
else is refused before a kernel starts, and no payload ever runs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from papermill.translators import PythonTranslator

from tests.reliability._job_probe import probe_schedule, write_probe
from virtuna.cli import main
from virtuna.config import load_settings
from virtuna.jobs import scheduler
from virtuna.jobs.runner import run_job
from virtuna.jobs.schedule import load_schedule
from virtuna.service import create_app

ADMIN_TOKEN = "admin-test-params"


def _write(target: Path) -> str:
    return f"open({str(target)!r}, 'w').write('x')"


def bad_names(target: Path) -> dict[str, str]:
    """Parameter names shaped to break out of `name = value` in the injected cell."""
    w = _write(target)
    return {
        "newline": f"x = 1\n{w}\ny",
        "semicolon": f"x = 1; {w}; y",
        "quotes": f"x = '1'\"\n{w}\n#",
        "dunder-import": f"__import__('os').system('touch ' + {str(target)!r}) or y",
        "dunder-builtins": "__builtins__",
        "declared-name-plus-code": f"count = {w} or 1\ncount",
        "comment-break": f"count  # \n{w}\ny",
        "unicode-lookalike": "\uff43ount",  # fullwidth c: Python would read it as `count`
        "unicode-payload": f"\uff58 = 1\n{w}\n\uff59",
        "very-long": "a" * 20_000 + f"\n{w}\nb",  # under the API body cap
        "keyword": "lambda",
        "keyword-import": f"import os as x\nx.system('touch ' + {str(target)!r})\ny",
        "reserved": "db_path",
        "trailing-space": "count ",
        "empty": "",
    }


def bad_values(target: Path) -> dict[str, tuple[str, Any]]:
    """Declared names with values that are not plain data of the declared type."""
    w = _write(target)
    return {
        "dict": ("note", {"__class__": w}),
        "dict-in-list": ("tags", [{"a": w}]),
        "nested-list": ("tags", [[w]]),
        "code-for-int": ("count", f"1\n{w}"),
        "bool-for-int": ("count", True),
        "float-for-int": ("count", 1.5),
        "str-for-bool": ("flag", f"True\n{w}"),
        "too-long-str": ("note", "x" * 20_000),
        "too-long-list": ("tags", ["a"] * 5_000),
        "null-for-int": ("count", None),
    }


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The probe job, known to the runner, the CLI and the API; reports in tmp_path."""
    schedule = probe_schedule(write_probe(tmp_path / "notebooks"))
    monkeypatch.setattr("virtuna.jobs.runner.load_schedule", lambda: schedule)
    monkeypatch.setattr("virtuna.jobs.runner.REPORTS_DIR", tmp_path / "reports")
    return schedule


def _post(schedule: Any, db_path: Path, body: Any) -> httpx.Response:
    import asyncio

    settings = load_settings(admin_token=ADMIN_TOKEN, apify_token=None)
    app = create_app(settings, db_path=db_path, schedule=schedule)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post(
                "/api/jobs/probe",
                headers={
                    "Authorization": f"Bearer {ADMIN_TOKEN}",
                    "Content-Type": "application/json",
                },
                content=json.dumps(body),
            )

    return asyncio.run(go())


SHAPES = list(bad_names(Path("t")))
VALUES = list(bad_values(Path("t")))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_api_refuses_an_undeclared_name_with_422(
    shape: str, probe: Any, db_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    name = bad_names(target)[shape]
    response = _post(probe, db_path, {name: 1})
    assert not target.exists()
    assert response.status_code == 422, response.text
    body = response.json()
    assert "error" in body and body["fields"][0]["field"].startswith(name[:30])


@pytest.mark.parametrize("shape", SHAPES)
def test_the_cli_refuses_an_undeclared_name_with_one_line_and_exit_2(
    shape: str, probe: Any, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pwned"
    name = bad_names(target)[shape]
    code = main(["--db", str(db_path), "jobs", "run", "probe", "-p", name, "1"])
    assert not target.exists()
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("virtuna: error: ") and "probe" in err[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_schedule_file_refuses_an_undeclared_name_naming_job_and_parameter(
    shape: str, db_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    name = bad_names(target)[shape]
    notebook = write_probe(tmp_path / "notebooks")
    path = tmp_path / "jobs.yaml"
    entry = {"cron": "0 * * * *", "notebook": str(notebook), "parameters": {name: 1}}
    path.write_text(yaml.safe_dump({"jobs": {"probe": entry}}), encoding="utf-8")
    with pytest.raises(ValueError, match="probe") as caught:
        schedule = load_schedule(path)
        scheduler.run_due(db_path=db_path, schedule=schedule, reports_dir=tmp_path / "r")
    assert not target.exists()
    assert "parameter" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("shape", VALUES)
def test_a_value_that_is_not_plain_data_of_the_declared_type_is_refused_everywhere(
    shape: str, probe: Any, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pwned"
    name, value = bad_values(target)[shape]
    response = _post(probe, db_path, {name: value})
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == name
    with pytest.raises(ValueError, match=name):
        run_job("probe", {name: value}, db_path=db_path, reports_dir=tmp_path / "r")
    if isinstance(value, str):  # the CLI reads values as YAML scalars
        code = main(["--db", str(db_path), "jobs", "run", "probe", "-p", name, value])
        assert code == 2 and "virtuna: error: " in capsys.readouterr().err
    notebook = write_probe(tmp_path / "yaml-notebooks")
    path = tmp_path / "jobs.yaml"
    entry = {"cron": "0 * * * *", "notebook": str(notebook), "parameters": {name: value}}
    path.write_text(yaml.safe_dump({"jobs": {"probe": entry}}), encoding="utf-8")
    with pytest.raises(ValueError, match=name):
        load_schedule(path)
    assert not target.exists()


CODE_STRINGS = [
    "plain",
    'a "double" quote',
    "a 'single' quote",
    "'''triple''' and \"\"\"triple\"\"\"",
    "line one\nline two\r\nline three",
    '"\nopen("/tmp/x", "w").write("x")\n"',
    "\\\"; __import__('os').system('id'); \"",
    "trailing backslash \\",
    "\\n is not a newline here",
    "nul \x00 and bell \x07",
    "unicode: caf\u00e9 \u2603 \U0001f600 \u202e",
    "{0.__class__}",
    "f'{__import__(\"os\")}'",
]


@pytest.mark.parametrize("value", CODE_STRINGS)
def test_papermill_writes_a_string_value_as_one_string_literal(value: str) -> None:
    source = PythonTranslator.codify({"note": value})
    tree = ast.parse(source)
    assert len(tree.body) == 1
    assign = tree.body[0]
    assert isinstance(assign, ast.Assign) and isinstance(assign.value, ast.Constant)
    assert assign.value.value == value


def test_a_string_value_with_quotes_and_newlines_reaches_the_notebook_as_data(
    probe: Any, db_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    echo = tmp_path / "echo.json"
    note = f"\"\n{_write(target)}\n\"''' \\\" {_write(target)} #"
    result = run_job(
        "probe",
        {"note": note, "count": 7, "ratio": 2, "tags": ["x", "y"], "echo": str(echo)},
        db_path=db_path,
        reports_dir=tmp_path / "r",
    )
    assert result.status == "succeeded", result.error
    assert not target.exists()
    seen = json.loads(echo.read_text(encoding="utf-8"))
    assert seen == {"note": note, "count": 7, "ratio": 2, "flag": False, "tags": ["x", "y"]}
