"""The schedule file (schedules/jobs.yaml): jobs, their cron times (UTC) and notebooks."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from virtuna.constants import PROJECT_ROOT
from virtuna.notebooks import ParameterError, check_parameters, shown

SCHEDULE_FILE = PROJECT_ROOT / "schedules" / "jobs.yaml"
RESERVED_PARAMETERS = ("db_path",)  # the runner sets it from --db or VIRTUNA_DB_PATH
# A name becomes a report folder, a command argument and an Airflow DAG id: plain words only.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class ScheduleError(ValueError):
    """The schedule file cannot be read or names something wrong (one line, naming it)."""


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
    # Settings (environment names) without which the job has nothing to do: it is skipped
    # without starting a kernel.
    needs_settings: tuple[str, ...] = ()

    def missing_settings(self) -> list[str]:
        """Which of `needs_settings` are not set."""
        from virtuna.config import get_settings

        settings = get_settings()
        return [name for name in self.needs_settings if not getattr(settings, name.lower())]

    def next_time(self, after: datetime) -> datetime | None:
        """The first cron time after `after` (UTC), for scheduled jobs."""
        return croniter(self.cron, after).get_next(datetime) if self.cron else None

    def previous_time(self, before: datetime) -> datetime | None:
        """The last cron time at or before `before` (UTC)."""
        if not self.cron:
            return None
        return croniter(self.cron, before + timedelta(seconds=1)).get_prev(datetime)

    def checked_parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The schedule's parameters with `overrides`, each declared by the notebook, as data."""
        values = {**self.parameters, **(overrides or {})}
        for name in RESERVED_PARAMETERS:
            if name in values:
                raise ParameterError(
                    f"job {self.name}", name, "is set by the runner (use --db or VIRTUNA_DB_PATH)"
                )
        return check_parameters(self.notebook, values, owner=f"job {self.name}")

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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _entry(path: Path, section: str, name: object, entry: object) -> Job:
    """One job or report of the schedule file, checked (cron, keys, parameters)."""
    if not NAME.fullmatch(str(name)):
        raise ScheduleError(
            f"{path.name}: {section[:-1]} name {shown(str(name))} is not letters, digits, - and _ "
            "(at most 100, starting with a letter or digit)"
        )
    where = f"{path.name}: {section[:-1]} {name}"
    if not isinstance(entry, dict):
        raise ScheduleError(f"{where} must be a mapping of settings, got {entry!r:.60}")
    unknown = sorted(set(entry) - {f.name for f in fields(Job)} - {"name"})
    if unknown or "notebook" not in entry:
        problem = f"unknown settings {unknown}" if unknown else "names no notebook"
        raise ScheduleError(f"{where}: {problem}")
    if section == "jobs" and not croniter.is_valid(str(entry.get("cron", ""))):
        raise ScheduleError(f"{where} has no valid cron expression: {entry.get('cron')!r:.60}")
    if not isinstance(entry.get("parameters", {}), dict):
        raise ScheduleError(f"{where}: parameters must be a mapping of names to values")
    timeout = entry.get("timeout_s", 900)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ScheduleError(f"{where}: timeout_s must be a positive whole number of seconds")
    from virtuna.config import Settings

    needs = entry.get("needs_settings") or []
    unknown_settings = [n for n in needs if str(n).lower() not in Settings.model_fields]
    if not isinstance(needs, list) or unknown_settings:
        raise ScheduleError(f"{where}: needs_settings names unknown settings {unknown_settings}")
    job = Job(
        **{
            **entry,
            "name": str(name),
            "parameters": entry.get("parameters") or {},
            "needs_settings": tuple(str(n) for n in needs),
        }
    )
    try:
        job.checked_parameters()
    except (ParameterError, FileNotFoundError) as exc:
        raise ScheduleError(f"{path.name}: {_one_line(str(exc))}") from exc
    return job


def load_schedule(path: Path = SCHEDULE_FILE) -> Schedule:
    """Read and check the schedule file (a bad entry is a ScheduleError naming it)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScheduleError(f"{path}: cannot be read: {_one_line(str(exc))}") from exc
    if not isinstance(document, dict):
        raise ScheduleError(f"{path.name}: must be a mapping with `jobs` and `reports`")
    sections: dict[str, dict[str, Job]] = {}
    for section in ("jobs", "reports"):
        entries = document.get(section) or {}
        if not isinstance(entries, dict):
            raise ScheduleError(f"{path.name}: `{section}` must be a mapping of names to entries")
        sections[section] = {str(n): _entry(path, section, n, e) for n, e in entries.items()}
    return Schedule(sections["jobs"], sections["reports"])
