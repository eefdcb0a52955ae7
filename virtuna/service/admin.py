"""Admin routes (Bearer ADMIN_TOKEN): LLM costs, calibration report, jobs; and the profile."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, BackgroundTasks, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from virtuna.calibration.ece import calibration_bins
from virtuna.engine.schema import MAX_HANDLE_INPUT
from virtuna.ingest.profiles import request_profile_scrape_in_background
from virtuna.jobs.runner import reconcile, run_job
from virtuna.jobs.schedule import Schedule, load_schedule
from virtuna.log import bind_request, get_logger
from virtuna.notebooks import ParameterError, shown
from virtuna.service.auth import CurrentUser, require_admin
from virtuna.service.errors import BODY_ERRORS, LIMIT_ERRORS, limit_response
from virtuna.store import connect, run, utcnow
from virtuna.store.creators import normalize_handle
from virtuna.store.outcomes import outcome_frame
from virtuna.store.users import (
    release_profile_scrape,
    reserve_profile_scrape,
    set_creator_handle,
    set_outcome_consent,
)

router = APIRouter()
log = get_logger(__name__)

MIN_OUTCOMES = 10
N_BINS = 10
JOB_RUN_COLUMNS = (
    "id, job, status, parameters, output_notebook, output_html, error, started_at, "
    "finished_at, duration_ms"
)


def parse_days(raw: str | None, default: int = 30) -> int:
    """The `days` query parameter: 1 to 365; 400 otherwise."""
    if raw is None:
        return default
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= 365:
        raise HTTPException(400, "days must be a whole number from 1 to 365")
    return days


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else round(float(v), 6) for v in values]


@router.get("/api/admin/costs", dependencies=[Depends(require_admin)])
def costs(request: Request, days: str | None = None) -> dict[str, Any]:
    """LLM cost per UTC day, provider and model over the last `days` days (exact cents, as
    strings)."""
    window = parse_days(days)
    since = (utcnow() - timedelta(days=window - 1)).date()
    with connect(request.app.state.db_path) as con:
        rows = run(
            con,
            "SELECT CAST(created_at AS DATE) AS day, provider, model, count(*), "
            "coalesce(sum(cost_cents), 0), count(*) - count(cost_cents) "
            "FROM llm_calls WHERE CAST(created_at AS DATE) >= ? "
            "GROUP BY day, provider, model ORDER BY day DESC, provider, model",
            [since],
        )
    # A call without usage has an unknown cost (NULL): cost_cents sums the known costs and
    # calls_without_usage says how many were left out, so an unknown is never a silent 0.
    return {
        "days": window,
        "calls_without_usage": sum(int(unknown) for *_, unknown in rows),  # type: ignore[call-overload]
        "data": [
            {
                "date": str(day),
                "provider": provider,
                "model": model,
                "calls": calls,
                "cost_cents": str(total),
                "calls_without_usage": unknown,
            }
            for day, provider, model, calls, total, unknown in rows
        ],
    }


@router.get("/api/admin/calibration-report", dependencies=[Depends(require_admin)])
def calibration_report(request: Request, days: str | None = None) -> dict[str, Any]:
    """ECE (10 bins) of served scores against whether the post resonated, for recent outcomes,
    pooled and with the outcome count per signal profile."""
    window = parse_days(days)
    with connect(request.app.state.db_path) as con:
        frame = outcome_frame(con, since=utcnow() - timedelta(days=window))
    known = frame.dropna(subset=["resonated"])
    body: dict[str, Any] = {
        "days": window,
        "outcomes": len(frame),
        "with_tier": len(known),
        "min_outcomes": MIN_OUTCOMES,
        "profiles": {str(k): int(v) for k, v in known["signal_profile"].value_counts().items()},
    }
    if len(known) < MIN_OUTCOMES:
        return {**body, "status": "not enough outcomes", "ece": None, "bins": []}
    p = known["overall_score"].to_numpy(dtype=float) / 100.0
    y = known["resonated"].to_numpy(dtype=float)
    result = calibration_bins(y, p, n_bins=N_BINS)
    bins = [
        {
            "lower": float(lo),
            "upper": float(hi),
            "count": int(n),
            "mean_predicted": mp,
            "mean_observed": mo,
        }
        for lo, hi, n, mp, mo in zip(
            result.edges[:-1],
            result.edges[1:],
            result.counts,
            _nan_to_none(result.mean_predicted),
            _nan_to_none(result.mean_observed),
            strict=True,
        )
    ]
    return {
        **body,
        "status": "ok",
        "resonated_rate": float(y.mean()),
        "ece": result.ece,
        "mce": result.mce,
        "bins": bins,
    }


def _schedule(request: Request) -> Schedule:
    schedule: Schedule | None = getattr(request.app.state, "schedule", None)
    return schedule if schedule is not None else load_schedule()


def _run_in_background(
    runner: Callable[..., object], name: str, parameters: dict[str, Any], db_path: object
) -> None:
    with bind_request(f"job-{name}"):
        try:
            runner(name, parameters, db_path=db_path)
        except Exception as exc:  # recorded in job_runs by the runner; logged here too
            log.error("job run failed", job=name, error=str(exc))


@router.post(
    "/api/jobs/{name}",
    status_code=202,
    dependencies=[Depends(require_admin)],
    response_model=None,
)
def start_job(
    name: str,
    request: Request,
    background: BackgroundTasks,
    parameters: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, str] | JSONResponse:
    """Start a scheduled job's run after answering; 422 names a parameter the notebook refuses."""
    job = _schedule(request).jobs.get(name)
    if job is None:
        raise HTTPException(404, f"no scheduled job {shown(name)}")
    try:
        job.checked_parameters(parameters)  # the runner checks again: every path meets there
    except ParameterError as exc:
        return JSONResponse(
            {
                "error": "invalid job parameters",
                "fields": [{"field": exc.parameter[:200], "message": str(exc)}],
            },
            status_code=422,
        )
    runner = getattr(request.app.state, "job_runner", None) or run_job
    background.add_task(
        _run_in_background, runner, name, parameters or {}, request.app.state.db_path
    )
    return {"status": "started", "job": name}


@router.get("/api/jobs", dependencies=[Depends(require_admin)])
def list_job_runs(request: Request) -> dict[str, Any]:
    """The last 50 job runs, newest first."""
    with connect(request.app.state.db_path) as con:
        reconcile(con)
        rows = run(
            con,
            f"SELECT {JOB_RUN_COLUMNS} FROM job_runs ORDER BY started_at DESC, id DESC LIMIT 50",
        )
    names = [c.strip() for c in JOB_RUN_COLUMNS.split(",")]
    data = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        if isinstance(item["parameters"], str):
            item["parameters"] = json.loads(item["parameters"])
        data.append(item)
    return {"data": data}


@router.patch(
    "/api/profile",
    status_code=202,
    response_model=None,
    responses={**BODY_ERRORS, **LIMIT_ERRORS},
)
def update_profile(
    request: Request,
    user: CurrentUser,
    creator_handle: Annotated[str | None, Body(max_length=MAX_HANDLE_INPUT)] = None,
    outcome_consent: Annotated[bool | None, Body()] = None,
) -> dict[str, object] | JSONResponse:
    """Save the caller's creator handle (and start its paid profile scrape in the background)
    and/or whether their posts' outcomes may be collected 48 h after posting.

    At most PROFILE_SCRAPES_PER_DAY scrapes a user per UTC day: the slot is reserved atomically
    before anything is saved (429 beyond it), and given back if the scrape cannot be started.
    """
    if creator_handle is None and outcome_consent is None:
        return _invalid("creator_handle", "send creator_handle, outcome_consent or both")
    clean = None
    if creator_handle is not None:
        try:
            clean = normalize_handle(creator_handle)
        except ValueError as exc:
            return _invalid("creator_handle", str(exc))
    state = request.app.state
    answer: dict[str, object] = {"status": "accepted"}
    with connect(state.db_path) as con:
        if clean is not None:
            limit = state.settings.profile_scrapes_per_day
            day = reserve_profile_scrape(con, user.id, limit=limit)
            if day is None:
                return limit_response(user, limit, "daily profile scrape limit reached")
            set_creator_handle(con, user.id, clean)
            answer["creator_handle"] = clean
        if outcome_consent is not None:
            set_outcome_consent(con, user.id, outcome_consent)
            answer["outcome_consent"] = outcome_consent
    if clean is not None:
        try:
            request_profile_scrape_in_background(
                clean, db_path=state.db_path, settings=state.settings
            )
        except BaseException:
            with connect(state.db_path) as con:
                release_profile_scrape(con, user.id, day)
            raise
    return answer


def _invalid(name: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid request", "fields": [{"field": name, "message": message}]},
        status_code=422,
    )
