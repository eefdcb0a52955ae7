"""A provider that echoes secrets in its errors: nothing stored or returned carries them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.llm import FakeDeepSeek, FakeGemini
from tests.reliability.service_harness import DRAFT, bearer, harness

SECRETS = {
    "apify_token": "apify_api_TOKENsecret111",
    "apify_webhook_secret": "whsec-Secret-222",
    "admin_token": "admin-Secret-333",
    "whop_api_key": "whop-Secret-444",
    "sentry_dsn": "https://pubkey555@o1.ingest.sentry.io/9",
}


class _EchoingSignal:
    """A tier-model loader whose error message carries every secret it was handed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, con: Any) -> Any:
        raise RuntimeError(f"model store said: {self.text}")


def test_echoed_secrets_are_scrubbed_from_stored_rows_and_the_response(tmp_path: Path) -> None:
    with FakeGemini() as gemini, FakeDeepSeek() as deepseek:
        every = [gemini.api_key, deepseek.api_key, *SECRETS.values()]
        echo = " ".join(every)
        # Every attempt fails with the provider echoing all configured secrets back.
        gemini.status(500, f"internal error for key {echo}", times=10)
        deepseek.status(503, f"overloaded; your key {echo} is fine", times=10)
        api = harness(tmp_path, gemini, deepseek, tier_signal=_EchoingSignal(echo), **SECRETS)
        _, key = api.user("eve", "pro")
        (response,) = api.send(
            [{"method": "POST", "url": "/api/analyze", "json": DRAFT, "headers": bearer(key)}]
        )
    assert response.status_code == 200, response.text
    body = response.json()
    errors = [str(e) for (e,) in api.rows("SELECT error FROM llm_calls WHERE error IS NOT NULL")]
    (warnings,) = api.rows("SELECT warnings FROM analysis_results")[0]
    assert len(errors) >= 2 and body["warnings"]
    stored = " ".join([*errors, *map(str, warnings), response.text])
    for secret in every:
        assert secret not in stored, secret
    assert "[Filtered]" in " ".join(errors)
    assert any("[Filtered]" in w for w in body["warnings"])
    assert any("model store said: [Filtered]" in w for w in body["warnings"])
