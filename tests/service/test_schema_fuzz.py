"""Schemathesis over the OpenAPI schema: generated requests to every route, no server error.

The suite runs a few examples per operation; `make fuzz` runs FUZZ_EXAMPLES=200.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from virtuna.config import load_settings
from virtuna.service import create_app
from virtuna.store import connect
from virtuna.store.users import create_user

ADMIN = "admin-token-for-fuzzing"
STORE = Path(tempfile.mkdtemp(prefix="virtuna-fuzz-")) / "fuzz.duckdb"
with connect(STORE) as _con:
    _, USER_KEY = create_user(_con, "fuzzer", "pro")
STARTED: list[str] = []  # jobs the fuzzer asked for: recorded, never run

APP = create_app(
    load_settings(admin_token=ADMIN, apify_webhook_secret="fuzz-secret"),
    db_path=STORE,
    job_runner=lambda name, *args, **kwargs: STARTED.append(name),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


# `make fuzz` sets FUZZ_EXAMPLES and sends every request with both keys; the suite stays fast
# with a few examples and the route's own key.
LONG_RUN = "FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case: schemathesis.Case) -> None:
    admin_route = case.path.startswith(("/api/admin", "/api/jobs"))
    keys = (USER_KEY, ADMIN) if LONG_RUN else (ADMIN if admin_route else USER_KEY,)
    for key in keys:
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        content_type = response.headers.get("content-type") or [""]
        assert content_type[0].startswith(("application/json", "text/event-stream"))  # JSON errors
