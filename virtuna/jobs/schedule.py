"""The schedule file (schedules/jobs.yaml): jobs, their cron times (UTC) and notebooks."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from virtuna.config import PROJECT_ROOT

SCHEDULE_FILE = PROJECT_ROOT / "schedules" / "jobs.yaml"


@dataclass(frozen=True)
class Job:
    """One runnable notebook: a scheduled job (with cron and function) or an on-demand report."""

    name: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_s: int = 900
    cron: str | None = None
    function: str | None = None
    needs_network: bool = False

    def next_time(self, after: datetime) -> datetime | None:
        """The first cron time after `after` (UTC), for scheduled jobs."""
        return croniter(self.cron, after).get_next(datetime) if self.cron else None

    def previous_time(self, before: datetime) -> datetime | None:
        """The last cron time at or before `before` (UTC)."""
        if not self.cron:
            return None
        return croniter(self.cron, before + timedelta(seconds=1)).get_prev(datetime)

    def resolve_function(self) -> Any:
        """The job's Python function (module:attribute)."""
        if not self.function:
            raise LookupError(f"{self.name} names no function")
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Schedule:
    """Every job and report of the schedule file."""

    jobs: dict[str, Job]
    reports: dict[str, Job]

    def get(self, name: str) -> Job:
        """A job or report by name; KeyError names the known ones."""
        found = self.jobs.get(name) or self.reports.get(name)
        if found is None:
            known = ", ".join([*self.jobs, *self.reports])
            raise KeyError(f"no job or report {name!r}; known: {known}")
        return found


def load_schedule(path: Path = SCHEDULE_FILE) -> Schedule:
    """Read and check the schedule file (a bad entry is an error naming it)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    jobs = {}
    for name, entry in (document.get("jobs") or {}).items():
        if not croniter.is_valid(str(entry.get("cron", ""))):
            raise ValueError(f"{path.name}: job {name} has no valid cron expression")
        jobs[name] = Job(name=name, **entry)
    reports = {
        name: Job(name=name, **entry) for name, entry in (document.get("reports") or {}).items()
    }
    return Schedule(jobs, reports)
