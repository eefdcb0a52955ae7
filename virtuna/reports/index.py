"""reports/index.html: per job its latest run (status, why, duration, parameters), then the
history, each linked by the job's and the run's name. Rendered from templates/index.html.j2."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_FILE = "status.json"
# Shown in the index's own header, not on every row.
UNSHOWN_PARAMETERS = ("db_path",)
WHY_LIMIT = 300  # characters of a summary or error shown


@dataclass(frozen=True)
class IndexRow:
    """One run as the index shows it."""

    job: str
    run: str  # the run's folder name (its UTC start and id)
    status: str
    started: str
    duration: str
    why: str  # the notebook's summary, or the error of a failed run
    parameters: str
    link: str | None  # relative to the index


def run_summary(notebook: Path | None) -> str | None:
    """The summary a run's notebook reported (status.json in its folder), if any."""
    if notebook is None:
        return None
    try:
        reported = json.loads((notebook.parent / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    summary = reported.get("summary") if isinstance(reported, dict) else None
    return str(summary) if summary else None


def index_row(record: dict[str, Any], reports_dir: Path) -> IndexRow:
    """A job_runs row (job, id, started_at, status, duration_ms, parameters, output_notebook,
    output_html, error, summary) as the index shows it."""
    html = Path(str(record["output_html"])) if record.get("output_html") else None
    notebook = Path(str(record["output_notebook"])) if record.get("output_notebook") else None
    link = None
    if html is not None:
        link = os.path.relpath(html, reports_dir) if html.is_absolute() else str(html)
    folder = (notebook or html).parent.name if (notebook or html) else str(record["id"])
    duration = record.get("duration_ms")
    error = record.get("error")
    why = (str(error) if error else record.get("summary") or run_summary(notebook)) or ""
    return IndexRow(
        job=str(record["job"]),
        run=folder,
        status=str(record["status"]),
        started=f"{record['started_at']:%Y-%m-%d %H:%M:%S}",
        duration="" if duration is None else f"{float(duration) / 1000:,.1f} s",
        why=why if len(why) <= WHY_LIMIT else why[: WHY_LIMIT - 1] + "…",
        parameters=_parameters(record.get("parameters")),
        link=link,
    )


def _parameters(raw: object) -> str:
    try:
        values = json.loads(str(raw)) if raw else {}
    except ValueError:
        return str(raw)
    if not isinstance(values, dict):
        return str(values)
    shown = {k: v for k, v in values.items() if k not in UNSHOWN_PARAMETERS}
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in shown.items())


def render_index(
    latest: list[IndexRow],
    history: list[IndexRow],
    *,
    store: str,
    generated: datetime,
    older: int = 0,
) -> str:
    """The index page: each job's latest run, then the history newest first (`older` more runs
    are recorded but not listed)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("index.html.j2").render(
        latest=sorted(latest, key=lambda row: row.job),
        history=history,
        older=older,
        store=store,
        generated=f"{generated:%Y-%m-%d %H:%M:%S}",
    )
