"""One function per scheduled job; the notebooks in notebooks/ call these.

Every job that writes takes `dry_run`: it then computes and returns everything it would have
written, and writes nothing (its notebook's default, so a notebook opened by hand changes
nothing; the runner passes `dry_run=False`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def writes(con: Any, *, dry_run: bool) -> Iterator[Any]:
    """One transaction around a job's writes: committed, or on a dry run rolled back once the
    block has read what it wrote."""
    if not dry_run:
        from virtuna.store import transaction  # here: `virtuna --help` reads the schedule

        with transaction(con):
            yield con
        return
    con.begin()
    try:
        yield con
    finally:
        con.rollback()
