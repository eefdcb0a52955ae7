"""House rules a linter cannot see: the engine logs only through structlog (OBS-05); imports
point down (a data source never imports the jobs or the service that use it)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "virtuna"


def _modules(folder: str = "") -> list:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _parse(path: Path) -> ast.Module:
    """A module's syntax tree. CPython 3.11's parser can raise a spurious SystemError ("AST
    constructor recursion depth mismatch") while another thread of the test session is
    running; it is a race in the interpreter, so the parse is simply tried again."""
    for _ in range(4):
        try:
            return ast.parse(path.read_text(encoding="utf-8"))
        except SystemError:
            continue
    return ast.parse(path.read_text(encoding="utf-8"))


def test_no_print_outside_the_cli() -> None:
    offenders = []
    for path in _modules():
        if path.name == "cli.py":
            continue
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_engine_and_jobs_log_through_structlog_only() -> None:
    offenders = []
    for folder in ("engine", "jobs", "ingest", "service"):
        for path in _modules(folder):
            tree = _parse(path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "logging" for a in node.names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
                if isinstance(node, ast.ImportFrom) and node.module == "logging":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == [], "use virtuna.log.get_logger instead of the logging module"


def _imported(tree: ast.Module) -> list[tuple[str, int]]:
    """Every module an import statement of the tree names, with its line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.lineno))
    return found


def test_data_sources_import_no_job_or_service() -> None:
    offenders = []
    for folder in ("ingest", "memberships"):
        for path in _modules(folder):
            for module, line in _imported(_parse(path)):
                if module.startswith(("virtuna.jobs", "virtuna.service")):
                    offenders.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert offenders == [], "jobs and the service use ingest and memberships, not the reverse"


# package folder -> the packages it must never import (the layers above it)
LAYERS = {
    "store": ("virtuna.engine", "virtuna.ml", "virtuna.jobs", "virtuna.service", "virtuna.ingest"),
    "ml": ("virtuna.engine", "virtuna.jobs", "virtuna.service"),
    "engine": ("virtuna.jobs", "virtuna.service", "virtuna.calibration"),
}


def test_lower_layers_never_import_higher_ones() -> None:
    offenders = []
    for folder, above in LAYERS.items():
        for path in _modules(folder):
            for module, line in _imported(_parse(path)):
                if module.startswith(above):
                    offenders.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert offenders == [], "the engine uses ml and the store; ml uses the store; never the reverse"
