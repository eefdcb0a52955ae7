"""The `virtuna` command: set up the store, ingest data, run the demo."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Building the parser needs only these constants. Each command imports what it uses (the
# store, Papermill, scikit-learn, ...), so `virtuna --help` and light commands start fast.
from virtuna.constants import INGEST_FORMATS, LOCKED_EXIT, PROJECT_ROOT, REPORTS_DIR

if TYPE_CHECKING:
    from datetime import datetime

    from virtuna.engine.schema import PredictionResult
    from virtuna.ingest import IngestReport

DEFAULT_RAW_DIR = PROJECT_ROOT / "data" / "raw"

# The failures printed as one line (exit status 2), each by the module that defines it. Only a
# class whose module has been imported can have been raised, so main looks them up among the
# loaded modules instead of importing every command's dependencies to name them.
USER_ERRORS = (
    ("virtuna.config", "SettingsError"),
    ("virtuna.ingest", "IngestError"),
    ("virtuna.store.connection", "StoreLockedError"),
    ("virtuna.store.schema", "StoreSchemaError"),
    ("virtuna.jobs.schedule", "ScheduleError"),
    ("virtuna.notebooks", "ParameterError"),
)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    """CliError and every class of USER_ERRORS whose module is loaded."""
    found: list[type[Exception]] = [CliError]
    for module_name, name in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None:
            found.append(getattr(module, name))
    return tuple(found)


def _db_path(args: argparse.Namespace) -> Path:
    from virtuna.config import get_settings

    return Path(args.db) if args.db else get_settings().virtuna_db_path


def _print_table(
    rows: list[dict[str, object]], columns: Sequence[str], *, title: str | None = None
) -> None:
    """Rows as a table on stdout: numbers right-aligned with thousands separators."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for name in columns:
        if rows and all(isinstance(r.get(name), int | float) for r in rows):
            table.columns[list(columns).index(name)].justify = "right"
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    # Piped output is not cut to 80 columns (rich's default without a terminal).
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def cmd_init_db(args: argparse.Namespace) -> int:
    """Create the store (or bring it up to the newest schema)."""
    from virtuna.store import connect
    from virtuna.store.schema import applied_version

    path = _db_path(args)
    with connect(path) as con:
        version = applied_version(con)
    print(f"store {path} is at schema version {version}")
    return 0


def _expand(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """Files as given (named by their file name) and every data file below a folder (named by
    its path relative to that folder)."""
    from virtuna.ingest import data_files

    files: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = data_files(path)
            if not found:
                raise CliError(f"{path}: no data files (.json, .jsonl, .csv) found")
            files.extend(found)
        elif path.is_file():
            files.append((path, path.name))
        else:
            raise CliError(f"{path}: no such file")
    return files


def _ingest_paths(
    paths: Sequence[Path], fmt: str | None, db: Path, *, progress: bool = True
) -> list[IngestReport]:
    from tqdm import tqdm

    from virtuna.ingest import ingest_file

    files = _expand(paths)
    total = sum(p.stat().st_size for p, _ in files)
    reports = []
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="ingest",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    ) as bar:
        for path, ref in files:
            bar.set_postfix_str(ref)
            reports.append(
                ingest_file(path, fmt=fmt, db_path=db, progress=bar.update, source_ref=ref)
            )
    return reports


def _print_reports(reports: list[IngestReport]) -> None:
    rows = [{**r.as_dict(), "file": r.source_ref} for r in reports]
    _print_table(rows, ["file", "source", "read", "inserted", "updated", "rejected", "seconds"])
    for report in reports:
        if not report.balanced:
            raise CliError(f"{report.path}: counts do not add up: {report.as_dict()}")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest the given files and folders (every data file below a folder)."""
    reports = _ingest_paths([Path(p) for p in args.paths], args.format, _db_path(args))
    _print_reports(reports)
    return 0


class _Steps:
    """The demo's output: one line per step on stdout, with a ticking elapsed-time bar on
    stderr while a step runs (the steps' own log lines go to the log file)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Run a step; the caller appends its one-line outcome to the yielded list."""
        import threading
        import time

        from tqdm import tqdm

        self.done += 1
        label = f"[{self.done}/{self.total}] {name}"
        outcome: list[str] = []
        started = time.monotonic()
        stop = threading.Event()
        bar = tqdm(desc=label, bar_format="{desc}  {elapsed}", file=sys.stderr, leave=False)

        def tick() -> None:
            while not stop.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield outcome
        finally:
            stop.set()
            ticker.join()
            bar.close()
            seconds = time.monotonic() - started
            took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
            print(f"{label:<30} {' '.join(outcome) or 'done'} ({took})", flush=True)


# Network jobs the demo runs (skipped without their keys) and the reports it renders.
DEMO_NETWORK_JOBS = ("scrape-trending", "sync-whop", "refresh-competitors", "collect-outcomes")
# The tier reports it renders. The training comparison runs on the two single-fold splits and
# two learned kinds (about a minute; retrain-ml has already judged leave-one-source-out):
# `virtuna jobs run tier-training` compares every kind on every split.
DEMO_REPORTS: dict[str, dict[str, object]] = {
    "tier-diagnosis": {},
    "tier-training": {
        "kinds": ["residual_boosting", "logistic"],
        "splits": ["creator", "temporal"],
    },
}
DEMO_DRAFTS = (
    ("Wait for it... the secret to crispy rice #cooking #fyp", None),  # the busiest creator
    ("my cat doing nothing #cat", "brand_new_creator"),
)


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: ingest the bundled real data, run every job's notebook and the tier
    reports, replay held-out videos, predict twice, and summarise."""
    from virtuna.calibration.backtest import run_backtest
    from virtuna.config import get_settings
    from virtuna.engine.baseline import baseline_path, compute_baseline, save_baseline
    from virtuna.log import configure_logging
    from virtuna.store import connect, one, utcnow

    db = _db_path(args)
    raw_dir = Path(args.data_dir)
    if not raw_dir.is_dir():
        raise CliError(f"{raw_dir}: no such folder")
    reports_dir = Path(args.reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    log_path = reports_dir / "demo.log"
    print(f"store {db}; reports {reports_dir}; log lines in {log_path}")
    jobs = ["calculate-trends", *DEMO_NETWORK_JOBS, "retrain-ml"]
    later = {"calibration-audit": {}, "validate-rules": {}, "model-health": {}, **DEMO_REPORTS}
    steps = _Steps(total=len(jobs) + len(later) + 3)
    with log_path.open("a", encoding="utf-8") as log_file:
        configure_logging(get_settings(), stream=log_file)
        with steps.step("ingest data/raw") as outcome:
            reports = _ingest_paths([raw_dir], None, db, progress=False)
            for report in reports:
                if not report.balanced:
                    raise CliError(f"{report.path}: counts do not add up: {report.as_dict()}")
            inserted = sum(r.inserted for r in reports)
            updated = sum(r.updated for r in reports)
            rejected = sum(r.rejected for r in reports)
            outcome.append(
                f"{len(reports)} files: {inserted:,} new videos, {updated:,} updates of stored "
                f"ones; rejected rows, kept with their reason in ingest_rejects: {rejected:,}"
            )
        # The bundled data is historical: trends run "as of" its newest post; every other
        # job runs with the schedule's own defaults, as a scheduled run would.
        for name in jobs:
            values = {"as_of": "latest"} if name == "calculate-trends" else {}
            _run_step(steps, name, values, db, reports_dir)
        with steps.step("backtest") as outcome:
            try:
                backtest = run_backtest(db_path=db)
                outcome.append(
                    f"{backtest.analyses:,} held-out videos replayed with {backtest.model_id}; "
                    f"{backtest.resonating_share:.0%} resonated"
                )
            except LookupError as exc:
                outcome.append(f"skipped - {exc}")
        for name, values in later.items():
            _run_step(steps, name, values, db, reports_dir)
        with steps.step("predict two drafts") as outcome:
            with connect(db) as con:
                save_baseline(compute_baseline(con), baseline_path(db))
                (busiest,) = one(
                    con,
                    "SELECT author_handle FROM scraped_videos WHERE author_handle IS NOT NULL "
                    "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
                )
            # Drafts posted now, as a user would: the bundled trend snapshots are too old to
            # count, so the scores come from the signals the backtests had.
            now = utcnow()
            drafts = [(text, handle or str(busiest)) for text, handle in DEMO_DRAFTS]
            predictions = [_predict(text, handle, now, db) for text, handle in drafts]
            outcome.append(", ".join(f"{r.overall_score:.0f}/100" for r in predictions))
    for result, (text, handle) in zip(predictions, drafts, strict=True):
        _print_prediction(result, text, handle, now)
    print()
    _print_summary(db, reports_dir)
    return 0


def _run_step(
    steps: _Steps, name: str, parameters: dict[str, object], db: Path, reports_dir: Path
) -> None:
    """One job of the demo, run like any scheduled run, and its outcome on one line."""
    from virtuna.jobs.runner import run_job

    with steps.step(name) as outcome:
        result = run_job(name, parameters, db_path=db, reports_dir=reports_dir)
        detail = " ".join((result.summary or result.error or "").split())
        outcome.append(result.status + (f" - {detail[:150]}" if detail else ""))


def _print_summary(db: Path, reports_dir: Path) -> None:
    """The demo's closing table: the data, the served models beside the baseline a sceptic
    would try first, the calibration maps and where the reports are."""
    import json

    from virtuna.store import connect, one, run

    with connect(db) as con:
        videos, sources, creators = one(
            con,
            "SELECT count(*), count(DISTINCT source), "
            "count(DISTINCT coalesce(author_handle, author_id)) FROM scraped_videos",
        )
        (rejects,) = one(con, "SELECT count(*) FROM ingest_rejects")
        models = run(con, "SELECT tier_scheme, card FROM models WHERE is_active ORDER BY 1")
        maps = run(
            con,
            "SELECT profile, held_out_count, ece_before, ece_after FROM calibration_params "
            "WHERE is_active ORDER BY profile",
        )
        unmapped = run(
            con,
            "SELECT a.signal_profile, count(*) FROM outcomes o JOIN analysis_results a "
            "ON a.id = o.analysis_id WHERE a.signal_profile IS NOT NULL AND a.signal_profile "
            "NOT IN (SELECT profile FROM calibration_params WHERE is_active) GROUP BY 1 ORDER BY 1",
        )
    rows: list[dict[str, object]] = [
        {
            "what": "data",
            "figures": f"{videos:,} videos from {sources} sources, {creators:,} creators; "
            f"{rejects:,} rejected rows kept",
        }
    ]
    for scheme, card in models:
        served = json.loads(str(card))
        m = served["metrics"]
        rows.append(
            {
                "what": f"model {scheme}",
                "figures": f"{served['kind']}: accuracy {m.get('accuracy', float('nan')):.3f}, "
                f"spearman {m.get('spearman', float('nan')):.3f}; "
                f"{m.get('reference', 'baseline')}: "
                f"{m.get('reference_accuracy', float('nan')):.3f}, "
                f"{m.get('reference_spearman', float('nan')):.3f} ({m.get('split')})",
            }
        )
    if not models:
        rows.append({"what": "model", "figures": "none promoted: see the retrain-ml report"})
    for profile, count, before, after in maps:
        rows.append(
            {
                "what": f"calibration {profile}",
                "figures": f"held-out ECE {before:.3f} -> {after:.3f} on {count or 0:,} outcomes",
            }
        )
    for profile, count in unmapped:
        rows.append(
            {
                "what": f"calibration {profile}",
                "figures": f"no map ({count:,} outcomes; why: the calibration-audit report): "
                "served raw",
            }
        )
    if not maps and not unmapped:
        rows.append({"what": "calibration", "figures": "no active map: scores are served raw"})
    rows.append({"what": "reports", "figures": str(reports_dir / "index.html")})
    _print_table(rows, ["what", "figures"], title="Summary")


def _predict(text: str, handle: str, when: datetime, db: Path) -> PredictionResult:
    """One prediction as a user would ask for it (LLMs only when their keys are set)."""
    import asyncio

    from virtuna.engine.pipeline import Engine

    async def run() -> PredictionResult:
        async with Engine(db_path=db) as engine:
            return await engine.analyze(
                {"content_text": text, "creator_handle": handle, "planned_post_time": when}
            )

    return asyncio.run(run())


def _print_prediction(result: PredictionResult, text: str, handle: str, when: datetime) -> None:
    """One prediction as the demo shows it: the score and what it means, the signals, and the
    warnings counted (the whole result is stored in analysis_results)."""
    target = {
        "beats_usual": "beats the creator's usual (tier 4 of their own posts)",
        "reference_tier": "reaches tier 4 of the reference population",
    }.get(result.score_target, result.score_target)
    views = f", {result.resonates_at_views:,.0f}+ views" if result.resonates_at_views else ""
    calibrated = (
        f"calibrated (map v{result.calibration_version})"
        if result.is_calibrated
        else "uncalibrated"
    )
    print(f"\n{text!r} by @{handle}, planned for {when:%Y-%m-%d %H:%M} UTC:")
    print(
        f"  {result.overall_score:.1f}/100: the chance it {target}{views}; {calibrated}, raw "
        f"{result.raw_score:.1f}; confidence {result.confidence_label}"
    )
    signals = {
        "rules": result.rule_score,
        "trends": result.trend_score,
        "gemini": result.gemini_score,
        "behavioural": result.behavioral_score,
        "ml": result.ml_score,
    }
    shown = ", ".join(f"{k} {v:.0f}" for k, v in signals.items() if v is not None)
    missing = [k for k, v in signals.items() if v is None]
    line = f"  signals: {shown}" + (f"; unavailable: {', '.join(missing)}" if missing else "")
    if result.tiers and result.tiers["usual_tier"] is not None:
        line += f"; the creator's usual tier {result.tiers['usual_tier']}"
    print(line + f"; {len(result.warnings)} warnings")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP service under uvicorn (logs through our renderer)."""
    import uvicorn

    from virtuna.service import create_app

    app = create_app(db_path=_db_path(args))
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    return 0


def cmd_creators_add(args: argparse.Namespace) -> int:
    """Track a creator and start their profile scrape."""
    from virtuna.ingest.apify import client_from_settings
    from virtuna.ingest.profiles import request_profile_scrape, wait_and_ingest

    db = _db_path(args)
    try:
        request = request_profile_scrape(args.handle, db_path=db)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"@{request.handle}: {request.status}" + (f" ({request.error})" if request.error else ""))
    if request.status != "running":
        return 1
    if args.wait and request.run_id:
        client = client_from_settings()
        assert client is not None  # the scrape started, so the token is set
        with client:
            result = wait_and_ingest(client, request.run_id, db_path=db)
        print(f"run {result.run_id}: {result.state}, {result.outcome}, {result.items} videos")
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    """Create a user and print their API key, the only time it is shown."""
    import duckdb

    from virtuna.store import connect
    from virtuna.store.users import create_user

    try:
        with connect(_db_path(args)) as con:
            user_id, key = create_user(con, args.name, args.tier)
    except (ValueError, duckdb.ConstraintException) as exc:
        raise CliError(f"could not create user {args.name!r}: {exc}") from exc
    print(f"user {args.name} ({args.tier}): {user_id}")
    print(f"API key (shown once, store it now): {key}")
    return 0


def cmd_users_consent(args: argparse.Namespace) -> int:
    """Record whether a user's posts' outcomes may be collected 48 hours after posting."""
    from virtuna.store import connect
    from virtuna.store.users import set_outcome_consent

    with connect(_db_path(args)) as con:
        rows = con.execute("SELECT id FROM users WHERE name = ?", [args.name]).fetchall()
        if not rows:
            raise CliError(f"no user named {args.name!r}")
        set_outcome_consent(con, str(rows[0][0]), args.consent == "on")
    state = "on: outcomes are collected" if args.consent == "on" else "off: nothing is collected"
    print(f"user {args.name}: outcome consent {state}")
    return 0


def _parameters(pairs: list[list[str]] | None) -> dict[str, object]:
    """-p key value pairs; values read as YAML (48 -> int, null -> None, [a, b] -> list).

    What YAML reads as something other than JSON data (a date, say) stays the text as typed;
    the runner checks names and values against the notebook.
    """
    import yaml

    values: dict[str, object] = {}
    for key, text in pairs or []:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        plain = (type(None), bool, int, float, str, list, dict)
        values[key] = value if isinstance(value, plain) else text
    return values


def _json_parameters(text: str | None) -> dict[str, object]:
    """--parameters-json: one JSON object of parameters, with JSON's own types."""
    import json

    if text is None:
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--parameters-json is not JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise CliError("--parameters-json must be a JSON object of names to values")
    return values


def cmd_jobs_run(args: argparse.Namespace) -> int:
    """Run one job (or report notebook) now; non-zero exit when it failed or was locked."""
    from virtuna.jobs.runner import run_job

    parameters = {**_json_parameters(args.parameters_json), **_parameters(args.parameter)}
    reports_dir = Path(args.reports_dir) if args.reports_dir else None
    try:
        result = run_job(args.name, parameters, db_path=_db_path(args), reports_dir=reports_dir)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc
    print(f"{result.job}: {result.status}" + (f" ({result.summary})" if result.summary else ""))
    if result.html:
        print(f"report: {result.html}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    if result.status == "locked":
        return LOCKED_EXIT
    return 0 if result.status in ("succeeded", "skipped") else 1


def cmd_jobs_run_all(args: argparse.Namespace) -> int:
    """Run every job and report once, as of the store's newest data, and list the failures."""
    from virtuna.jobs.runner import run_job
    from virtuna.jobs.schedule import load_schedule
    from virtuna.notebooks import notebook_parameters

    schedule = load_schedule()
    jobs = [*schedule.jobs.values(), *schedule.reports.values()]
    steps = _Steps(total=len(jobs))
    failed: list[str] = []
    db = _db_path(args)
    for job in jobs:
        # The bundled data is historical: "as of now" would leave most reports empty.
        values = {"as_of": "latest"} if "as_of" in notebook_parameters(job.notebook) else {}
        with steps.step(job.name) as outcome:
            result = run_job(job.name, values, db_path=db)
            detail = " ".join((result.summary or result.error or "").split())
            outcome.append(result.status + (f" - {detail[:150]}" if detail else ""))
        if result.status == "failed":
            failed.append(job.name)
    print(f"\n{len(jobs) - len(failed)} of {len(jobs)} ran; reports: {REPORTS_DIR / 'index.html'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_schedule(args: argparse.Namespace) -> int:
    """List, run what is due, serve, or print the schedule as a crontab."""
    from virtuna.jobs import scheduler

    if args.action == "list":
        _print_table(
            scheduler.schedule_table(db_path=_db_path(args)),
            ["job", "cron (UTC)", "next run", "last run", "last status", "network"],
        )
    elif args.action == "crontab":
        print(scheduler.crontab(args.virtuna))
    elif args.action == "airflow-dag":
        return _write_airflow_dags(args)
    elif args.action == "run-due":
        runs = scheduler.run_due(db_path=_db_path(args))
        for run in runs:
            print(f"{run.job}: {run.status}")
        if not runs:
            print("nothing is due")
        return 1 if any(r.status == "failed" for r in runs) else 0
    else:
        scheduler.serve(db_path=_db_path(args))
    return 0


def _write_airflow_dags(args: argparse.Namespace) -> int:
    """The schedule as an Airflow DAG file: printed, or written to --out."""
    from virtuna.jobs.airflow import dag_id, dag_source
    from virtuna.jobs.schedule import load_schedule

    schedule = load_schedule()
    source = dag_source(
        schedule,
        virtuna=args.virtuna,
        reports_dir=Path(args.reports_dir).resolve() if args.reports_dir else None,
        queue=args.queue,
    )
    if not args.out:
        print(source, end="")
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(source, encoding="utf-8")
    ids = ", ".join(dag_id(job) for job in schedule.jobs.values())
    print(f"wrote {len(schedule.jobs)} DAGs to {out}: {ids}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Show the settings in force (secrets hidden), or the README's table of them."""
    from virtuna.config import get_settings, settings_table

    if args.markdown:
        print(settings_table())
        return 0
    for name, value in get_settings().model_dump().items():
        print(f"{name.upper()}={'' if value is None else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `virtuna` command."""
    from virtuna import __version__

    parser = argparse.ArgumentParser(prog="virtuna", description=__doc__)
    parser.add_argument("--version", action="version", version=f"virtuna {__version__}")
    parser.add_argument("--db", help="store file (default: VIRTUNA_DB_PATH)")
    sub = parser.add_subparsers(dest="command", required=True)

    init_db = sub.add_parser("init-db", help="create or migrate the store")
    init_db.set_defaults(func=cmd_init_db)

    ingest = sub.add_parser("ingest", help="ingest scraped data files")
    ingest.add_argument(
        "paths", nargs="+", help="files, or folders to ingest every data file below"
    )
    ingest.add_argument(
        "--format", choices=INGEST_FORMATS, help="the files' format (default: detect)"
    )
    ingest.set_defaults(func=cmd_ingest)

    settings = sub.add_parser("settings", help="show the settings in force")
    settings.add_argument("--markdown", action="store_true", help="print the README table")
    settings.set_defaults(func=cmd_settings)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.set_defaults(func=cmd_serve)

    creators = sub.add_parser("creators", help="tracked creators")
    creators_sub = creators.add_subparsers(dest="creators_command", required=True)
    add = creators_sub.add_parser("add", help="track a creator and scrape their profile")
    add.add_argument("handle", help="TikTok handle, with or without @")
    add.add_argument("--wait", action="store_true", help="wait for the scrape and ingest it")
    add.set_defaults(func=cmd_creators_add)

    users = sub.add_parser("users", help="API users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user and print their API key once")
    create.add_argument("name", help="unique user name")
    create.add_argument(
        "--tier",
        choices=["free", "starter", "pro"],
        default="free",
        help="membership tier, which sets the rate limits (free)",
    )
    create.set_defaults(func=cmd_users_create)
    consent = users_sub.add_parser(
        "consent", help="let collect-outcomes scrape a user's posts' stats (on) or not (off)"
    )
    consent.add_argument("name", help="the user's name")
    consent.add_argument("consent", choices=["on", "off"], help="on: collect; off: do not")
    consent.set_defaults(func=cmd_users_consent)

    jobs = sub.add_parser("jobs", help="run scheduled jobs by hand")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    run_cmd = jobs_sub.add_parser("run", help="run a job's notebook now")
    run_cmd.add_argument("name", help="job or report name (see `virtuna schedule list`)")
    run_cmd.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="override a notebook parameter (repeatable)",
    )
    run_cmd.add_argument(
        "--parameters-json",
        metavar="JSON",
        help="parameters as one JSON object, with JSON's types (-p pairs override it)",
    )
    run_cmd.add_argument("--reports-dir", help="where the run's reports go (reports/)")
    run_cmd.set_defaults(func=cmd_jobs_run)
    run_all = jobs_sub.add_parser(
        "run-all", help="run every job and report once, as of the store's newest data"
    )
    run_all.set_defaults(func=cmd_jobs_run_all)

    schedule = sub.add_parser("schedule", help="the job schedule")
    schedule.add_argument(
        "action",
        choices=["list", "run-due", "serve", "crontab", "airflow-dag"],
        help="list: jobs with next and last runs; run-due: run what is due once; serve: run "
        "jobs as they fall due until stopped; crontab: print the schedule as crontab lines; "
        "airflow-dag: print (or --out) an Apache Airflow DAG file with a DAG per job",
    )
    schedule.add_argument(
        "--virtuna",
        help="crontab, airflow-dag: the project's virtuna command (default: .venv/bin/virtuna)",
    )
    schedule.add_argument("--out", help="airflow-dag: write the DAG file here")
    schedule.add_argument(
        "--reports-dir", help="airflow-dag: where the runs' reports go (default: reports/)"
    )
    schedule.add_argument(
        "--queue", help="airflow-dag: the Airflow queue of every task (the store's workers)"
    )
    schedule.set_defaults(func=cmd_schedule)

    demo = sub.add_parser("demo", help="run the main job on the bundled real data")
    demo.add_argument("--data-dir", default=str(DEFAULT_RAW_DIR), help="folder of data files")
    demo.add_argument("--reports-dir", default=str(REPORTS_DIR), help="where reports go")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, configure logging and Sentry, run, and turn failures into one line."""
    args = build_parser().parse_args(argv)
    from virtuna.config import get_settings
    from virtuna.log import configure_logging, init_sentry

    try:
        settings = get_settings()
        configure_logging(settings)
        init_sentry(settings)
        return int(args.func(args))
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"virtuna: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
