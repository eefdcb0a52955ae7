"""The worker of the several-process reservation test, in a module of its own: a spawned
process imports only this and the store, not the test module's service and fakes (~7 s)."""

from __future__ import annotations

from typing import Any

from virtuna.store import connect
from virtuna.store.users import reserve_analysis


def reserve_many(db_path: str, user_id: str, attempts: int, granted: Any) -> None:
    """Ask for a slot `attempts` times (limit 5), counting the grants in `granted`."""
    for _ in range(attempts):
        with connect(db_path) as con:
            if reserve_analysis(con, user_id, limit=5) is not None:
                with granted.get_lock():
                    granted.value += 1
