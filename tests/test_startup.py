"""Start-up stays light: `import virtuna` and `virtuna --help` load none of the heavy libraries.

Each check runs in a fresh interpreter (this test session has loaded everything already) and
looks at `sys.modules`, so it is deterministic; `bench/startup.py` measures the time.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from virtuna.cli import USER_ERRORS

# Libraries that cost from tenths of a second to seconds to import; only the commands and
# functions that use them may load them.
HEAVY = (
    "pandas",
    "numpy",
    "scipy",
    "sklearn",
    "imblearn",
    "papermill",
    "nbformat",
    "nbconvert",
    "jsonschema",
    "matplotlib",
    "duckdb",
    "pyarrow",
    "httpx",
    "sentry_sdk",
    "fastapi",
    "tenacity",  # imports tornado when it is installed (Jupyter brings it)
)
COMMANDS = (
    "init-db",
    "ingest",
    "settings",
    "serve",
    "creators",
    "users",
    "jobs",
    "schedule",
    "demo",
)


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this checkout's package in a fresh interpreter."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def _heavy_after(code: str) -> list[str]:
    """The heavy libraries loaded once code has run in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(set(sys.modules))))"
    run = _python("-c", probe)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.splitlines()[-1])
    return [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize(
    "code",
    [
        "import virtuna",
        "from virtuna import predict, apredict, __version__",
        "import virtuna.cli\nvirtuna.cli.build_parser()",
        "import virtuna.log",
        "from virtuna.cli import main\nmain(['settings'])",
    ],
    ids=["import-virtuna", "public-api", "cli-parser", "log", "settings-command"],
)
def test_start_up_loads_no_heavy_library(code: str) -> None:
    assert _heavy_after(code) == []


def test_help_exits_0_and_lists_every_command() -> None:
    run = _python("-m", "virtuna.cli", "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: virtuna")
    for command in COMMANDS:
        assert command in run.stdout


def test_ingest_help_lists_the_formats() -> None:
    run = _python("-m", "virtuna.cli", "ingest", "--help")
    assert run.returncode == 0, run.stderr
    assert "apify_csv" in run.stdout and "suggested_csv" in run.stdout


@pytest.mark.parametrize(("module", "name"), USER_ERRORS)
def test_every_user_error_the_cli_prints_exists(module: str, name: str) -> None:
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, Exception)


def test_predict_in_a_plain_shell_prints_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "VIRTUNA_DB_PATH": str(tmp_path / "store.duckdb")}
    code = "from virtuna import predict\npredict('hello world #fyp')"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("", "")


def test_a_rejected_draft_is_raised_once_and_not_logged(tmp_path: Path) -> None:
    env = {**os.environ, "VIRTUNA_DB_PATH": str(tmp_path / "store.duckdb")}
    run = subprocess.run(
        [sys.executable, "-c", "from virtuna import predict\npredict('')"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.count("Traceback") == 1 and "ValidationError" in run.stderr
