"""Tests for virtuna.log: rendering, context fields, stages, Sentry reporting and scrubbing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
import structlog
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from virtuna import log as vlog
from virtuna.config import Settings, load_settings

FAKE_DSN = "https://public@o0.ingest.sentry.io/0"
SECRET_ENV = (
    "SENTRY_DSN",
    "VIRTUNA_ENV",
    "VIRTUNA_LOG_LEVEL",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "APIFY_TOKEN",
    "APIFY_WEBHOOK_SECRET",
    "ADMIN_TOKEN",
    "WHOP_API_KEY",
)


class CapturingTransport(Transport):
    """A Sentry transport that keeps every envelope in memory instead of sending it."""

    def __init__(self) -> None:
        """Start with no envelopes."""
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        """Keep the envelope."""
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        """The error/message events captured so far."""
        found = [envelope.get_event() for envelope in self.envelopes]
        return [event for event in found if event is not None]

    def raw(self) -> bytes:
        """Everything captured, serialized exactly as it would be sent."""
        return b"".join(envelope.serialize() for envelope in self.envelopes)


def _close_sentry() -> None:
    """Close any Sentry client and leave a non-recording one with clean scopes."""
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with no Virtuna env vars, default structlog/logging and no Sentry."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    vlog.reset_logging()
    _close_sentry()
    yield
    vlog.reset_logging()
    _close_sentry()


def _settings(
    monkeypatch: pytest.MonkeyPatch, env: str = "production", **overrides: Any
) -> Settings:
    """Settings read from a monkeypatched environment (plus explicit overrides)."""
    monkeypatch.setenv("VIRTUNA_ENV", env)
    monkeypatch.setenv("VIRTUNA_LOG_LEVEL", str(overrides.pop("log_level", "DEBUG")))
    return load_settings(**overrides)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the stream parsed as one JSON object (fails if any line is not)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    """The lines with this event text."""
    return [line for line in lines if line["event"] == event]


@pytest.fixture
def json_stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Production logging configured onto a captured stream."""
    stream = io.StringIO()
    vlog.configure_logging(_settings(monkeypatch), stream=stream)
    return stream


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> CapturingTransport:
    """Sentry initialised through init_sentry with a fake DSN and a capturing transport."""
    capturing = CapturingTransport()
    settings = _settings(monkeypatch, sentry_dsn=FAKE_DSN, gemini_api_key="sk-live-123456")
    assert vlog.init_sentry(settings, transport=capturing) is True
    return capturing


# --------------------------------------------------------------------------- rendering


def test_production_every_line_is_one_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    settings = _settings(monkeypatch)
    vlog.configure_logging(settings, stream=stream)
    vlog.configure_logging(settings, stream=stream)  # twice: must not duplicate lines

    vlog.get_logger("virtuna.test").info("from structlog", rows=3)
    logging.getLogger("uvicorn.error").warning("from stdlib %s", "uvicorn")

    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["from structlog", "from stdlib uvicorn"]
    for line in lines:
        assert {"level", "event", "timestamp", "logger"} <= line.keys()
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert lines[0]["logger"] == "virtuna.test"
    assert lines[0]["level"] == "info"
    assert lines[0]["rows"] == 3
    assert lines[1]["logger"] == "uvicorn.error"
    assert lines[1]["level"] == "warning"


def test_production_exception_stays_on_one_json_line(json_stream: io.StringIO) -> None:
    log = vlog.get_logger("virtuna.test")
    try:
        raise RuntimeError("exploded\nover two lines")
    except RuntimeError:
        log.exception("it broke")
    (line,) = _lines(json_stream)
    assert line["event"] == "it broke"
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "RuntimeError"


def test_stdlib_exception_is_rendered_structured(json_stream: io.StringIO) -> None:
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("papermill").exception("cell failed")
    (line,) = _lines(json_stream)
    assert line["event"] == "cell failed" and line["logger"] == "papermill"
    assert line["exception"][0]["exc_type"] == "KeyError"


def test_level_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    vlog.configure_logging(_settings(monkeypatch, log_level="WARNING"), stream=stream)
    log = vlog.get_logger("virtuna.test")
    log.info("hidden")
    logging.getLogger("papermill").info("hidden too")
    log.warning("shown")
    logging.getLogger("papermill").error("shown too")
    assert [line["event"] for line in _lines(stream)] == ["shown", "shown too"]


def test_noisy_libraries_are_quieted(json_stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET https://example.org")
    logging.getLogger("httpx").warning("retrying")
    assert [line["event"] for line in _lines(json_stream)] == ["retrying"]


def test_development_renders_readable_console_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    vlog.configure_logging(_settings(monkeypatch, env="development"), stream=stream)
    vlog.get_logger("virtuna.dev").info("hello console", rows=7)
    logging.getLogger("uvicorn.error").info("stdlib line")

    text = stream.getvalue()
    lines = text.splitlines()
    assert len(lines) == 2
    assert "hello console" in lines[0] and "rows=7" in lines[0] and "virtuna.dev" in lines[0]
    assert "stdlib line" in lines[1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])
    assert "\x1b[" not in text  # a StringIO is not a TTY: no colours


def test_log_lines_do_not_leak_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    settings = _settings(monkeypatch, gemini_api_key="sk-live-123456")
    vlog.configure_logging(settings, stream=stream)
    log = vlog.get_logger("virtuna.test")
    log.info("calling with sk-live-123456", api_key="anything", token_count=12)
    logging.getLogger("uvicorn.error").info("Authorization: Bearer abc.def")

    text = stream.getvalue()
    assert "sk-live-123456" not in text
    assert "abc.def" not in text
    assert "anything" not in text
    first = _lines(stream)[0]
    assert first["token_count"] == 12  # harmless key kept


# --------------------------------------------------------------------------- context and stages


def test_stage_complete_line_carries_request_stage_duration_and_cost(
    json_stream: io.StringIO,
) -> None:
    with vlog.bind_request("req-42") as request_id, vlog.stage("wave_1", source="tiktok") as s:
        s.add_cost(0.25)
        s.add_cost(0.5)
        s.fields["rows"] = 10
        vlog.get_logger("virtuna.test").info("working")
    assert request_id == "req-42"
    vlog.get_logger("virtuna.test").info("after")

    lines = _lines(json_stream)
    (working,) = _events(lines, "working")
    assert working["request_id"] == "req-42" and working["stage"] == "wave_1"
    (done,) = _events(lines, "stage complete")
    assert done["request_id"] == "req-42"
    assert done["stage"] == "wave_1"
    assert isinstance(done["duration_ms"], float) and done["duration_ms"] >= 0
    assert done["cost_cents"] == pytest.approx(0.75)
    assert done["source"] == "tiktok" and done["rows"] == 10
    (after,) = _events(lines, "after")
    assert "request_id" not in after and "stage" not in after


def test_stage_duration_is_measured_in_ms(json_stream: io.StringIO) -> None:
    with vlog.stage("sleepy"):
        asyncio.run(asyncio.sleep(0.02))
    (done,) = _events(_lines(json_stream), "stage complete")
    assert 15 <= done["duration_ms"] < 2000
    assert done["duration_ms"] == round(done["duration_ms"], 1)
    assert done["cost_cents"] == 0.0  # nothing spent: reported as 0, never left out


def test_bind_request_without_id_binds_a_new_short_id() -> None:
    first = vlog.bind_request()
    second = vlog.bind_request()
    assert isinstance(first, str) and 6 <= len(first) <= 16
    assert first != second
    assert structlog.contextvars.get_contextvars()["request_id"] == second


def test_nested_stages_restore_the_outer_stage(json_stream: io.StringIO) -> None:
    log = vlog.get_logger("virtuna.test")
    with vlog.stage("outer") as outer:
        outer.add_cost(1.0)
        with vlog.stage("inner") as inner:
            inner.add_cost(2.0)
            assert vlog.current_stage() is inner
            log.info("in inner")
        assert vlog.current_stage() is outer
        log.info("back in outer")
    assert vlog.current_stage() is None
    log.info("outside")

    lines = _lines(json_stream)
    assert _events(lines, "in inner")[0]["stage"] == "inner"
    assert _events(lines, "back in outer")[0]["stage"] == "outer"
    assert "stage" not in _events(lines, "outside")[0]
    done = {line["stage"]: line for line in _events(lines, "stage complete")}
    assert done["inner"]["cost_cents"] == 2.0
    assert done["outer"]["cost_cents"] == 1.0  # a stage reports its own cost only


def test_stage_decorator_on_sync_and_async_functions(json_stream: io.StringIO) -> None:
    @vlog.stage("sync_step", kind="sync")
    def double(x: int) -> int:
        """Double x inside a stage."""
        vlog.add_cost(0.1)
        vlog.get_logger("virtuna.test").info("sync body")
        return 2 * x

    @vlog.stage("async_step")
    async def triple(x: int) -> int:
        """Triple x inside a stage."""
        await asyncio.sleep(0)
        vlog.get_logger("virtuna.test").info("async body")
        return 3 * x

    assert double(2) == 4
    assert double(3) == 6  # a fresh stage per call: costs do not pile up across calls
    assert asyncio.run(triple(2)) == 6
    assert double.__name__ == "double" and triple.__name__ == "triple"
    assert asyncio.iscoroutinefunction(triple)

    lines = _lines(json_stream)
    assert all(line["stage"] == "sync_step" for line in _events(lines, "sync body"))
    assert _events(lines, "async body")[0]["stage"] == "async_step"
    done = _events(lines, "stage complete")
    assert [line["stage"] for line in done] == ["sync_step", "sync_step", "async_step"]
    assert [line.get("cost_cents") for line in done] == [0.1, 0.1, 0.0]
    assert done[0]["kind"] == "sync"


def test_async_with_stage(json_stream: io.StringIO) -> None:
    async def work() -> None:
        async with vlog.stage("async_cm") as s:
            s.add_cost(0.5)

    asyncio.run(work())
    (done,) = _events(_lines(json_stream), "stage complete")
    assert done["stage"] == "async_cm" and done["cost_cents"] == 0.5


def test_failed_stage_is_reraised_logged_and_captured_once(
    json_stream: io.StringIO, transport: CapturingTransport
) -> None:
    with (
        vlog.bind_request("req-9"),
        pytest.raises(ValueError, match="boom"),
        vlog.stage("outer"),
        vlog.stage("wave_2", source="apify"),
    ):
        raise ValueError("boom")
    sentry_sdk.flush()

    lines = _lines(json_stream)
    failed = _events(lines, "stage failed")
    assert [line["stage"] for line in failed] == ["wave_2", "outer"]
    assert all(line["level"] == "error" and line["request_id"] == "req-9" for line in failed)
    assert failed[0]["error"] == "ValueError: boom"
    assert failed[0]["source"] == "apify"
    assert isinstance(failed[0]["duration_ms"], float)
    assert failed[0]["exception"][0]["exc_type"] == "ValueError"
    assert "exception" not in failed[1]  # traceback logged once, by the innermost stage
    assert not _events(lines, "stage complete")

    # One Sentry event for one exception, however many stages it crossed.
    (event,) = transport.events()
    assert event["tags"]["stage"] == "wave_2"
    assert event["tags"]["request_id"] == "req-9"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    crumbs = [
        crumb["message"]
        for crumb in event["breadcrumbs"]["values"]
        if crumb.get("category") == "virtuna.stage"
    ]
    assert crumbs == ["outer", "wave_2"]


def test_stage_without_sentry_still_reraises(json_stream: io.StringIO) -> None:
    @vlog.stage("fragile")
    def fragile() -> None:
        """Always fails."""
        raise KeyError("missing")

    with pytest.raises(KeyError):
        fragile()
    (failed,) = _events(_lines(json_stream), "stage failed")
    assert failed["stage"] == "fragile"


# --------------------------------------------------------------------------- Sentry and scrubbing


def test_init_sentry_without_dsn_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    settings = _settings(monkeypatch)
    vlog.configure_logging(settings, stream=stream)
    assert settings.sentry_dsn is None
    assert vlog.init_sentry(settings) is False
    assert not sentry_sdk.get_client().is_active()
    (line,) = _lines(stream)
    assert line["event"] == "sentry off" and line["level"] == "debug"


def test_init_sentry_with_dsn_sets_options(transport: CapturingTransport) -> None:
    client = sentry_sdk.get_client()
    assert client.is_active()
    assert client.options["environment"] == "production"
    assert client.options["data_collection"]["user_info"] is False
    assert client.options["traces_sample_rate"] == 0.1
    from sentry_sdk.integrations.fastapi import FastApiIntegration

    assert client.get_integration(FastApiIntegration) is not None  # the service's requests
    integration = client.get_integration(sentry_sdk.integrations.logging.LoggingIntegration)
    assert integration is not None
    assert integration._handler.level == logging.ERROR
    assert integration._breadcrumb_handler.level == logging.INFO


def test_secrets_never_reach_the_transport(
    json_stream: io.StringIO, transport: CapturingTransport
) -> None:
    logging.getLogger("virtuna.client").info("retrying with key sk-live-123456")  # breadcrumb
    sentry_sdk.capture_event(
        {
            "message": "gemini call failed for sk-live-123456",
            "extra": {
                "note": "sent Authorization: Bearer abc.def to the API",
                "nested": [{"password": "hunter2-pass"}, "prefix sk-live-123456 suffix"],
            },
            "request": {
                "url": "https://api.example.org/v1?token=qwerty-987&page=2",
                "headers": {"Authorization": "Bearer abc.def", "Accept": "application/json"},
                "data": {"password": "hunter2-pass", "prompt": "use sk-live-123456"},
            },
        }
    )
    sentry_sdk.flush()

    raw = transport.raw()
    assert raw, "nothing reached the transport"
    for leaked in (b"sk-live-123456", b"abc.def", b"hunter2-pass", b"qwerty-987"):
        assert leaked not in raw
    assert b"[Filtered]" in raw
    (event,) = transport.events()
    assert event["request"]["headers"]["Accept"] == "application/json"
    assert "page=2" in event["request"]["url"]
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
    assert "retrying with key [Filtered]" in crumbs


def test_structlog_error_becomes_a_readable_sentry_event(
    json_stream: io.StringIO, transport: CapturingTransport
) -> None:
    with vlog.bind_request("req-1"):
        vlog.get_logger("virtuna.api").error("upstream refused", status=503)
    sentry_sdk.flush()
    (event,) = transport.events()
    assert event["logentry"]["formatted"] == "upstream refused"
    assert event["logger"] == "virtuna.api"
    assert event["extra"]["status"] == 503
    assert event["extra"]["request_id"] == "req-1"


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "X-Api-Key",
        "apiKey",
        "GEMINI_API_KEY",
        "access_token",
        "token",
        "Authorization",
        "password",
        "db_password",
        "passwd",
        "sentry_dsn",
        "Cookie",
        "cookies",
        "client_secret",
        "apify_webhook_secret",
    ],
)
def test_secret_key_names(key: str) -> None:
    assert vlog.is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["monkey", "keys", "token_count", "input_tokens", "author", "donkey_id", "stage"]
)
def test_harmless_key_names(key: str) -> None:
    assert not vlog.is_secret_key(key)


def test_scrub_event_walks_dicts_lists_and_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, admin_token="adm-secret-value", deepseek_api_key="ds-777777")
    vlog.configure_logging(settings, stream=io.StringIO())
    event = {
        "extra": {
            "monkey": "banana",
            "keys": 3,
            "token": None,
            "list": ["ds-777777", ("x", "adm-secret-value")],
            "url": "https://user:pa55word@db.example.org/x",
            "header": "bearer abc.def",
        }
    }
    scrubbed = vlog.scrub_event(event, None)
    assert scrubbed["extra"]["monkey"] == "banana"
    assert scrubbed["extra"]["keys"] == 3
    assert scrubbed["extra"]["token"] is None
    assert scrubbed["extra"]["list"] == ["[Filtered]", ("x", "[Filtered]")]
    assert scrubbed["extra"]["url"] == "https://user:[Filtered]@db.example.org/x"
    assert scrubbed["extra"]["header"] == "bearer [Filtered]"
    assert event["extra"]["list"][0] == "ds-777777"  # the input is not mutated
