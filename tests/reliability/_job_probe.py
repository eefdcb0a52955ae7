"""A tiny job notebook for the reliability tests of the jobs layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from virtuna.jobs.schedule import Job, Schedule

PARAMETERS = """# Parameters (Papermill overrides these).
db_path = None    # the store
note = "hello"    # any text
count = 1         # a whole number
ratio = 0.5       # a number
flag = False      # yes or no
tags = ["a"]      # a list of words
echo = None       # where the body writes what it was given
"""

ECHO = """
import json, pathlib
if echo:
    pathlib.Path(echo).write_text(json.dumps(
        {"note": note, "count": count, "ratio": ratio, "flag": flag, "tags": tags}
    ))
"""


def write_probe(folder: Path, body: str = ECHO, *, parameters: str = PARAMETERS) -> Path:
    """A notebook with a parameters cell and one body cell, written into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    path = folder / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def probe_schedule(
    notebook: Path, *, timeout_s: int = 300, parameters: dict[str, Any] | None = None
) -> Schedule:
    """A schedule whose only job, `probe`, runs the given notebook."""
    job = Job(
        name="probe",
        notebook=str(notebook),
        parameters=parameters or {},
        timeout_s=timeout_s,
        cron="0 * * * *",
    )
    return Schedule({"probe": job}, {})
