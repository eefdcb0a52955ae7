"""The store writer: rows of many writes go in one statement per table, a bad write fails
only itself, and closing flushes what is queued."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from virtuna.store import connect, run
from virtuna.store.writer import Rows, StoreWriter, insert_rows

COLUMNS = ("id", "request_id", "provider", "model", "status", "input_tokens", "created_at")
AT = datetime(2026, 1, 1)


def _call(call_id: str) -> Rows:
    return Rows("llm_calls", COLUMNS, [(call_id, "r", "gemini", "m", "ok", 3, AT)])


class _Counting:
    """A connection that counts the statements run on it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.con.execute(sql, *args)

    def register(self, *args: Any) -> Any:
        return self.con.register(*args)

    def unregister(self, *args: Any) -> Any:
        return self.con.unregister(*args)


def test_rows_of_many_writes_are_one_statement_per_table(db_path: Path) -> None:
    with connect(db_path) as con:
        counting = _Counting(con)
        writes = [_call(f"c{i}") for i in range(50)]
        writes.append(Rows("llm_calls", COLUMNS, [], then=(_call("last"),)))
        insert_rows(counting, writes)  # type: ignore[arg-type]
        assert len(counting.statements) == 1
        assert run(con, "SELECT count(*), sum(input_tokens) FROM llm_calls") == [(51, 153)]


def test_a_bad_write_in_a_batch_fails_alone_and_close_flushes(db_path: Path) -> None:
    writer = StoreWriter(db_path)
    started, release = threading.Event(), threading.Event()

    def blocker(con: duckdb.DuckDBPyConnection) -> None:
        started.set()
        release.wait()

    first = writer.submit(blocker)
    assert started.wait(30)
    # Queued while the writer is busy: these three are taken as one batch.
    good = writer.submit(_call("a"))
    duplicate = writer.submit(_call("a"))  # the same primary key
    other = writer.submit(_call("b"))
    release.set()
    writer.close()
    assert first.result() is None and good.result() is None and other.result() is None
    with pytest.raises(duckdb.ConstraintException):
        duplicate.result()
    with connect(db_path) as con:
        assert run(con, "SELECT id FROM llm_calls ORDER BY id") == [("a",), ("b",)]
