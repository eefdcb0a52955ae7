"""POST /api/webhooks/apify: Apify tells us a run changed state; we check and ingest it.

The shared secret arrives in a header set by the run's ad-hoc webhook (`headersTemplate`) and
is compared in constant time: 401 otherwise, nothing written. The payload only says which run
to look at: the run is re-fetched with our token and its state recorded before we answer;
its items are ingested in the background (Apify waits 30 s at most), once per run.

Apify delivers again on any answer outside 2xx, so the answers are chosen for what should
happen next:
- 200 "accepted": this delivery claimed the run's ingest (a dead holder's claim is taken over
  and the ingest resumes, "resumed": true), or the run has not succeeded (state recorded).
- 200 "duplicate": the run is ingested, or its ingest is under way in this very process.
- 409 with Retry-After: another live process holds the claim; if it dies, the redelivery
  resumes the ingest, so Apify must keep the delivery.
- 200 "unknown run": Apify answered 404 for the run id; recorded, and redelivering cannot help.
- 502: Apify could not be reached or failed; a redelivery may succeed.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from virtuna.ingest.apify import WEBHOOK_SECRET_HEADER, ApifyError
from virtuna.ingest.apify_runs import WEBHOOK_PATH, ingest_run, record_apify_run
from virtuna.log import bind_request, get_logger
from virtuna.store import connect
from virtuna.store.scrape_runs import UNKNOWN_STATE, get_scrape_run, record_run, try_claim

router = APIRouter()
log = get_logger(__name__)
RETRY_AFTER_S = 60  # when another process holds a run's ingest: ask Apify to come back later
NOT_FOUND = 404


# Field names are Apify's own (camelCase), so the models read its payload as it is.
class EventData(BaseModel):
    """The event's ids (Apify's default payload)."""

    model_config = ConfigDict(extra="allow")
    actorId: str | None = None
    actorRunId: str | None = None


class ApifyWebhook(BaseModel):
    """Apify's default webhook payload; only the run id matters, the rest is re-fetched."""

    model_config = ConfigDict(extra="allow")
    eventType: str
    eventData: EventData | None = None
    resource: dict[str, Any] | None = None

    def run_id(self) -> str | None:
        """The run this event is about."""
        if self.eventData and self.eventData.actorRunId:
            return self.eventData.actorRunId
        run_id = (self.resource or {}).get("id")
        return str(run_id) if run_id else None


def check_secret(
    request: Request,
    secret: str | None = Header(None, alias=WEBHOOK_SECRET_HEADER),
) -> None:
    """401 unless the webhook carries our secret (constant-time compare)."""
    expected = request.app.state.settings.apify_webhook_secret
    if expected is None or not expected.get_secret_value():
        raise HTTPException(503, "APIFY_WEBHOOK_SECRET is not configured; webhooks are refused")
    if secret is None or not hmac.compare_digest(
        secret.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise HTTPException(401, "webhook secret missing or wrong")


def _ingest_in_background(request: Request, run_id: str, claimed: bool) -> None:
    with bind_request(f"apify-{run_id}"):
        client = request.app.state.apify_client_factory()
        if client is None:
            return
        try:
            with client:
                result = ingest_run(
                    client, run_id, db_path=request.app.state.db_path, claimed=claimed
                )
            log.info("apify run ingested", **result.__dict__)
        except Exception as exc:  # recorded on the run; the next delivery or job retries
            log.error("apify run ingest failed", run_id=run_id, error=str(exc))


def _record_unknown(db_path: Any, payload: ApifyWebhook, run_id: str, error: str) -> None:
    """Keep a delivery for a run Apify does not know, so an operator can see it."""
    with connect(db_path) as con:
        if get_scrape_run(con, run_id) is None:
            actor = payload.eventData.actorId if payload.eventData else None
            record_run(
                con,
                run_id=run_id,
                kind="unknown",
                actor_id=actor or "unknown",
                state=UNKNOWN_STATE,
                error=error,
            )


@router.post(
    WEBHOOK_PATH,
    dependencies=[Depends(check_secret)],
    response_model=None,
    responses={
        409: {"description": "another live process is ingesting the run; Retry-After says when"},
        502: {"description": "Apify could not be reached; nothing was written"},
    },
)
def apify_webhook(
    payload: ApifyWebhook, request: Request, background: BackgroundTasks
) -> dict[str, Any] | JSONResponse:
    """Record the run's state now; ingest its items after answering."""
    run_id = payload.run_id()
    if not run_id:
        raise HTTPException(422, "the payload names no run (eventData.actorRunId or resource.id)")
    db_path = request.app.state.db_path
    with connect(db_path) as con:
        known = get_scrape_run(con, run_id)
    if known is not None and known.ingested_at is not None:
        return {"status": "duplicate", "run_id": run_id}
    client = request.app.state.apify_client_factory()
    if client is None:
        raise HTTPException(503, "APIFY_TOKEN is not configured; cannot verify the run")
    try:
        with client:
            run = client.get_run(run_id)
    except ApifyError as exc:
        if exc.status == NOT_FOUND:
            # Redelivering cannot make the run exist: answer 2xx so Apify stops, and keep it.
            _record_unknown(db_path, payload, run_id, str(exc))
            log.warning("apify webhook for an unknown run", run_id=run_id, error=str(exc))
            return {"status": "unknown run", "run_id": run_id}
        # 502 makes Apify deliver again later; nothing was written.
        raise HTTPException(502, f"could not verify the run with Apify: {exc}") from exc
    record_apify_run(
        run,
        kind=known.kind if known else "trending",
        handle=known.handle if known else None,
        db_path=db_path,
    )
    log.info("apify webhook", run_id=run_id, event_type=payload.eventType, state=run.status)
    if not run.succeeded:
        if run.is_terminal:
            background.add_task(_ingest_in_background, request, run_id, False)
        return {"status": "accepted", "run_id": run_id, "state": run.status}
    with connect(db_path) as con:
        claim = try_claim(con, run_id)
    if claim.outcome == "done" or claim.held_here:
        return {"status": "duplicate", "run_id": run_id, "state": run.status}
    if claim.outcome == "held":
        return JSONResponse(
            {
                "status": "in progress elsewhere",
                "run_id": run_id,
                "state": run.status,
                "holder": claim.holder,
            },
            status_code=409,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    background.add_task(_ingest_in_background, request, run_id, claim.outcome == "claimed")
    body: dict[str, Any] = {"status": "accepted", "run_id": run_id, "state": run.status}
    if claim.resumed:
        body["resumed"] = True
    return body
