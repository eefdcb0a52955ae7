"""What predictions read from the store, held in memory: one copy per store and process.

Opening the store costs about 30 ms, and the store's file lock is shared with the scheduler,
ingests and notebooks (see `virtuna.store.connection`), so an engine cannot keep a connection
open. It keeps a copy instead: the online feature tables and the creator profiles as arrays
and dictionaries by key (`virtuna.store.online.MemoryReader`: a look-up is a dictionary
access, not a query), the rule library, the calibration maps, the model registry and the
trend snapshots in an in-memory DuckDB, plus the platform averages. Reads then cost no
connection and do not grow with the store.

The copy is reloaded when the store's change marker moves (`virtuna.store.mark_changed`,
set by ingests, trend runs, rule validation, calibration and model promotion) or when it is
older than `max_age_s`. While a reload cannot get the store (another process holds it), the
old copy keeps serving; only the first load waits.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from virtuna.engine.creator import platform_averages
from virtuna.log import get_logger
from virtuna.store import MEMORY, StoreLockedError, connect, run
from virtuna.store.connection import changed_at
from virtuna.store.online import MemoryReader

log = get_logger(__name__)

# The small tables copied whole into the in-memory DuckDB (the keyed ones are in the reader).
SNAPSHOT_TABLES = (
    "rule_library",
    "calibration_params",
    "models",
    "trending_sounds",
    "trending_hashtags",
)
MAX_AGE_S = 300.0


@dataclass
class _Copy:
    con: duckdb.DuckDBPyConnection
    reader: MemoryReader
    stamp: str
    loaded_at: float
    newest_post: datetime | None
    platform: dict[str, float]
    # Platform averages of moments before the newest post, computed from the store once each.
    earlier_platform: dict[datetime, dict[str, float]] = field(default_factory=dict)


class StoreSnapshot:
    """An in-memory copy of what predictions read from one store."""

    def __init__(self, db_path: Path | str, *, max_age_s: float = MAX_AGE_S) -> None:
        """A snapshot of the store at db_path; loaded on first use."""
        self.db_path = db_path
        self.max_age_s = max_age_s
        self._copy: _Copy | None = None
        self._reloading = threading.Lock()
        self.loads = 0  # how many times the copy was loaded: caches keyed on it drop stale entries

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the current copy (its own per thread), reloaded first if stale."""
        return self._current().con.cursor()

    def reader(self) -> MemoryReader:
        """The keyed online rows and creator profiles of the current copy."""
        return self._current().reader

    def platform(self, moment: datetime) -> dict[str, float]:
        """The platform averages over every video posted before `moment`."""
        copy = self._current()
        if copy.newest_post is None or moment > copy.newest_post:
            return copy.platform
        if moment not in copy.earlier_platform:  # a moment in the past: exact, from the store
            with connect(self.db_path) as con:
                copy.earlier_platform[moment] = platform_averages(con, moment)
        return copy.earlier_platform[moment]

    def ready(self, moment: datetime) -> bool:
        """Whether reading for a draft at `moment` is pure memory work: the copy is loaded and
        current, and the platform averages for `moment` need no store read."""
        copy = self._copy
        return (
            copy is not None
            and not self._stale(copy)
            and (
                copy.newest_post is None
                or moment > copy.newest_post
                or moment in copy.earlier_platform
            )
        )

    def _current(self) -> _Copy:
        copy = self._copy
        if copy is None:
            with self._reloading:
                if self._copy is None:
                    self._copy = self._load(lock_timeout_s=None)
            return self._copy
        # One thread reloads; the others keep reading the old copy meanwhile.
        if self._stale(copy) and self._reloading.acquire(blocking=False):
            try:
                self._copy = self._load(lock_timeout_s=0.0)
            except StoreLockedError:
                log.info("store busy: predictions keep the copy loaded earlier")
            finally:
                self._reloading.release()
        return self._copy

    def _stale(self, copy: _Copy) -> bool:
        """The store changed since the copy was loaded, or the copy is older than max_age_s."""
        return (
            changed_at(self.db_path) != copy.stamp
            or time.monotonic() - copy.loaded_at > self.max_age_s
        )

    def _load(self, *, lock_timeout_s: float | None) -> _Copy:
        stamp = changed_at(self.db_path)  # before reading: a change during the load reloads
        mem = duckdb.connect(MEMORY)
        # Look-ups are tiny: one thread each avoids scheduling cost and leaves cores to others.
        mem.execute("SET threads = 1")
        mem.execute("SET TimeZone = 'UTC'")
        with connect(self.db_path, lock_timeout_s=lock_timeout_s) as con:
            for table in SNAPSHOT_TABLES:
                rows = con.sql(f"SELECT * FROM {table}").to_arrow_table()
                mem.register("_copied", rows)
                mem.execute(f"CREATE TABLE {table} AS SELECT * FROM _copied")
                mem.unregister("_copied")
            reader = MemoryReader(con)
            (newest,) = run(con, "SELECT max(posted_at) FROM scraped_videos")[0]
            platform = platform_averages(con, datetime.max)
        self.loads += 1
        return _Copy(mem, reader, stamp, time.monotonic(), newest, platform)  # type: ignore[arg-type]


# Engines of one store share its copy while any of them lives; the two stores used last stay
# loaded between engines (`predict()` builds an engine per call), older ones are freed.
_shared: weakref.WeakValueDictionary[str, StoreSnapshot] = weakref.WeakValueDictionary()
_recent: deque[StoreSnapshot] = deque(maxlen=2)
_shared_lock = threading.Lock()


def shared_snapshot(db_path: Path | str) -> StoreSnapshot:
    """The process's snapshot of the store at db_path."""
    key = str(Path(db_path).resolve()) if str(db_path) != MEMORY else MEMORY
    with _shared_lock:
        snapshot = _shared.get(key)
        if snapshot is None:
            snapshot = _shared[key] = StoreSnapshot(db_path)
        if snapshot not in _recent:
            _recent.append(snapshot)
        return snapshot
