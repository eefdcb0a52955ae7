"""Execute a parameterized notebook with Papermill and render it as an HTML report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from virtuna.config import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "python3"


@dataclass(frozen=True)
class NotebookRun:
    """The outputs of one notebook execution."""

    notebook: Path
    html: Path | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when every cell ran."""
        return self.error is None


def notebook_path(name: str) -> Path:
    """The input notebook called `name` (with or without .ipynb) in notebooks/."""
    path = NOTEBOOK_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        raise FileNotFoundError(f"no notebook {path.name} in {NOTEBOOK_DIR}")
    return path


def render_html(notebook: Path, html: Path | None = None) -> Path:
    """An HTML rendering of an executed notebook without its input cells (for readers)."""
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target = html or notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def execute_notebook(
    name: str,
    output_dir: Path,
    parameters: dict[str, Any] | None = None,
    *,
    timeout_s: int = 900,
    progress: bool = False,
) -> NotebookRun:
    """Run notebooks/<name>.ipynb with parameters into output_dir; keep the output on failure."""
    source = notebook_path(name)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / source.name
    error: str | None = None
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters or {},
            kernel_name=KERNEL,
            cwd=str(PROJECT_ROOT),
            execution_timeout=timeout_s,
            progress_bar=progress,
        )
    except papermill.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
    html = render_html(target) if target.is_file() else None
    return NotebookRun(notebook=target, html=html, error=error)
