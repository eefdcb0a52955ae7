"""Store connection policy: migrations, the lock wait, concurrent writers, write conflicts."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from virtuna.store import StoreLockedError, connect, retry_conflicts, transaction
from virtuna.store.schema import applied_version, migrate, migrations

EXPECTED_TABLES = {
    "scraped_videos",
    "creators",
    "creator_snapshots",
    "scrape_runs",
    "trending_sounds",
    "trending_hashtags",
    "rule_library",
    "analysis_results",
    "outcomes",
    "llm_calls",
    "models",
    "calibration_params",
    "job_runs",
    "job_locks",
    "ingest_rejects",
    "users",
    "api_keys",
    "usage_daily",
    "user_subscriptions",
    "schema_version",
}


def test_new_store_has_every_table_and_records_its_version(db_path: Path) -> None:
    with connect(db_path) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        assert tables >= EXPECTED_TABLES
        assert applied_version(con) == len(migrations())


def test_migrations_apply_once(db_path: Path) -> None:
    with connect(db_path) as con:
        assert migrate(con) == []
        rows = con.execute("SELECT count(*) FROM schema_version").fetchone()
    assert rows == (len(migrations()),)


def test_analysis_results_has_the_columns_the_original_lacked(db_path: Path) -> None:
    with connect(db_path) as con:
        columns = {r[0] for r in con.execute("DESCRIBE analysis_results").fetchall()}
    assert {"ml_score", "is_calibrated", "rule_contributions", "cost_cents"} <= columns


def test_failed_transaction_leaves_nothing(db_path: Path) -> None:
    with connect(db_path) as con:
        with pytest.raises(duckdb.Error), transaction(con):
            con.execute(
                "INSERT INTO job_runs (id, job, status, started_at) VALUES ('a', 'j', 'x', now())"
            )
            con.execute("INSERT INTO job_runs (id) VALUES ('a')")  # NOT NULL violation
        assert con.execute("SELECT count(*) FROM job_runs").fetchone() == (0,)


def _hold_lock(path: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_locked_store_waits_then_names_the_problem(db_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(db_path), 3.0, ready))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        with (
            pytest.raises(StoreLockedError, match="VIRTUNA_DB_LOCK_TIMEOUT_S"),
            connect(db_path, lock_timeout_s=0.5),
        ):
            pass
        assert time.monotonic() - started >= 0.5
        # Waiting long enough gets the lock once the holder lets go.
        with connect(db_path, lock_timeout_s=30) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
    finally:
        holder.join(30)


def _writer(path: str, writer: int, count: int) -> None:
    for i in range(count):
        with connect(path, lock_timeout_s=60) as con, transaction(con):
            con.execute(
                "INSERT INTO job_runs (id, job, status, started_at) "
                "VALUES (?, 'two-writers', 'succeeded', now()::TIMESTAMP)",
                [f"w{writer}-{i}"],
            )


def test_two_processes_writing_at_once_lose_nothing(db_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 25
    writers = [ctx.Process(target=_writer, args=(str(db_path), w, count)) for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0, 0]
    with connect(db_path) as con:
        ids = {r[0] for r in con.execute("SELECT id FROM job_runs").fetchall()}
    assert ids == {f"w{w}-{i}" for w in (1, 2) for i in range(count)}


def _threads_writing(path: str, process: int, threads: int, rounds: int, report: str) -> None:
    """Threads of one process each open the store, insert registered Arrow rows and close it,
    with short gaps, so the process's database instance is made and torn down again and again
    while another process does the same."""
    errors: list[str] = []

    def work(thread: int) -> None:
        pause = random.Random(thread)
        for i in range(rounds):
            try:
                with connect(path, lock_timeout_s=60) as con:
                    con.register("_ids", pa.table({"id": [f"p{process}-t{thread}-{i}"]}))
                    con.execute(
                        "INSERT INTO job_runs (id, job, status, started_at) "
                        "SELECT id, 'turns', 'succeeded', now()::TIMESTAMP FROM _ids"
                    )
            except Exception as exc:  # every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(pause.random() * 0.004)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    Path(report).write_text("\n".join(errors), encoding="utf-8")


def test_threads_and_processes_opening_and_closing_at_once_lose_nothing(
    db_path: Path, tmp_path: Path
) -> None:
    with connect(db_path):
        pass  # created and migrated before the load
    threads, rounds = 3, 100
    ctx = multiprocessing.get_context("spawn")
    reports = [tmp_path / f"errors-{p}.txt" for p in (1, 2)]
    processes = [
        ctx.Process(target=_threads_writing, args=(str(db_path), p, threads, rounds, str(report)))
        for p, report in zip((1, 2), reports, strict=True)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert [p.exitcode for p in processes] == [0, 0]
    errors = [line for r in reports for line in r.read_text(encoding="utf-8").splitlines()]
    assert errors == []
    with connect(db_path) as con:
        stored = con.execute("SELECT count(*) FROM job_runs WHERE job = 'turns'").fetchall()
    assert stored[0][0] == 2 * threads * rounds


def _losing(errors: list[duckdb.Error]) -> tuple[list[int], Callable[[], int]]:
    """Work that raises errors in turn, then returns how many times it ran."""
    runs: list[int] = []

    def work() -> int:
        runs.append(1)
        if len(runs) <= len(errors):
            raise errors[len(runs) - 1]
        return len(runs)

    return runs, work


def test_retry_conflicts_runs_the_work_again_after_write_conflicts() -> None:
    conflict = duckdb.TransactionException("TransactionContext Error: Conflict on tuple deletion")
    duplicate = duckdb.ConstraintException('Duplicate key "id: a" violates primary key')
    at_commit = duckdb.TransactionException(
        "TransactionContext Error: Failed to commit: PRIMARY KEY or UNIQUE constraint "
        'violation: duplicate key "u1, 2026-01-02"'
    )
    _, work = _losing([conflict, duplicate, at_commit])
    assert retry_conflicts(work) == 4


def test_retry_conflicts_raises_other_errors_at_once_and_gives_up_in_the_end() -> None:
    runs, work = _losing([duckdb.ConstraintException("NOT NULL constraint failed: job_runs.job")])
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        retry_conflicts(work)
    assert len(runs) == 1
    conflict = duckdb.TransactionException("Conflict on update")
    runs, work = _losing([conflict] * 10)
    with pytest.raises(duckdb.TransactionException) as caught:
        retry_conflicts(work, attempts=4)
    assert caught.value is conflict and len(runs) == 4


def test_threads_opening_a_new_store_at_once_all_get_it_migrated(tmp_path: Path) -> None:
    """The service's first requests on a new store open it from several threads at once: each
    must find the schema applied once, none may lose a race to create it."""
    threads = 8
    for attempt in range(5):
        path = tmp_path / f"new-{attempt}.duckdb"
        start = threading.Barrier(threads)
        failures: list[str] = []

        def open_it(
            path: Path = path, start: threading.Barrier = start, failures: list[str] = failures
        ) -> None:
            start.wait()
            try:
                with connect(path) as con:
                    con.execute("SELECT count(*) FROM scraped_videos").fetchall()
            except Exception as exc:  # every failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")

        workers = [threading.Thread(target=open_it) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert failures == []
        with connect(path) as con:
            assert applied_version(con) == migrations()[-1].version
            assert con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == len(
                migrations()
            )
