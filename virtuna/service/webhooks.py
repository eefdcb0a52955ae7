"""POST /api/webhooks/apify: Apify tells us a run changed state; we check and ingest it.

The shared secret arrives in a header set by the run's ad-hoc webhook (`headersTemplate`) and
is compared in constant time: 401 otherwise, nothing written. The payload only says which run
to look at: the run is re-fetched with our token and its state recorded before we answer;
its items are ingested in the background (Apify waits 30 s at most), once per run.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from virtuna.ingest.apify import WEBHOOK_SECRET_HEADER, ApifyError
from virtuna.ingest.apify_runs import ingest_run, record_apify_run
from virtuna.log import bind_request, get_logger
from virtuna.store import connect
from virtuna.store.scrape_runs import get_scrape_run

router = APIRouter()
log = get_logger(__name__)


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


def _ingest_in_background(request: Request, run_id: str) -> None:
    with bind_request(f"apify-{run_id}"):
        client = request.app.state.apify_client_factory()
        if client is None:
            return
        try:
            with client:
                result = ingest_run(client, run_id, db_path=request.app.state.db_path)
            log.info("apify run ingested", **result.__dict__)
        except Exception as exc:  # recorded on the run; the next delivery or job retries
            log.error("apify run ingest failed", run_id=run_id, error=str(exc))


@router.post("/api/webhooks/apify", dependencies=[Depends(check_secret)])
def apify_webhook(
    payload: ApifyWebhook, request: Request, background: BackgroundTasks
) -> dict[str, Any]:
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
        # 502 makes Apify deliver again later; nothing was written.
        raise HTTPException(502, f"could not verify the run with Apify: {exc}") from exc
    record_apify_run(
        run,
        kind=known.kind if known else "trending",
        handle=known.handle if known else None,
        db_path=db_path,
    )
    log.info("apify webhook", run_id=run_id, event_type=payload.eventType, state=run.status)
    if run.succeeded or run.is_terminal:
        background.add_task(_ingest_in_background, request, run_id)
    return {"status": "accepted", "run_id": run_id, "state": run.status}
