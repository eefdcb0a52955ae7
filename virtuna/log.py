"""Structured logging (structlog over stdlib logging), timed stages, and Sentry set-up.

Importing this module loads structlog only: the settings, sentry_sdk and its integrations
(which import FastAPI) are imported where they are used, so that a module that merely logs,
and `virtuna --help`, start fast.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import structlog

if TYPE_CHECKING:
    from virtuna.config import Settings

__all__ = [
    "FILTERED",
    "RequestId",
    "Scrubber",
    "Stage",
    "add_cost",
    "bind_request",
    "configure_logging",
    "current_stage",
    "get_logger",
    "init_sentry",
    "is_secret_key",
    "reset_logging",
    "scrub_event",
    "scrub_secrets",
    "stage",
]

FILTERED = "[Filtered]"
STAGE_LOGGER = "virtuna.stage"
NOISY_LOGGERS = ("httpx", "httpcore", "asyncio", "urllib3", "filelock", "matplotlib", "traitlets")
# uvicorn installs its own non-propagating handlers; we route them through ours instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Secrets shorter than this are not searched for inside strings (they would match everywhere).
MIN_SECRET_LENGTH = 4

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- scrubbing

# Words that make a key secret wherever they appear as a whole word of the key name.
_STRONG_SECRET_WORDS = (
    r"api_?key|apikey|secret|password|passwd|dsn|authorization|cookies?|credentials?"
    r"|private_?key|access_?key|session_?id"
)
# Words that make a key secret only as its last word ("api_key", "access_token", not "keys",
# "token_count", "input_tokens" or "monkey").
_WEAK_SECRET_WORDS = r"key|token|auth"
_SECRET_KEY_RE = re.compile(
    rf"(?:^|_)(?:{_STRONG_SECRET_WORDS})(?:_|$)|(?:^|_)(?:{_WEAK_SECRET_WORDS})$"
)
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")
_BEARER_RE = re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_URL_PASSWORD_RE = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")
_QUERY_PARAM_RE = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")


def is_secret_key(key: str) -> bool:
    """Whether a mapping key (header, field, variable name) names a secret."""
    normalized = _NON_WORD_RE.sub("_", _CAMEL_RE.sub("_", key).lower()).strip("_")
    return bool(_SECRET_KEY_RE.search(normalized))


class Scrubber:
    """Replaces secrets (by key name, by known setting value, Bearer tokens) with [Filtered]."""

    def __init__(self, secret_values: list[str] | tuple[str, ...] = ()) -> None:
        """Build the scrubber for these plain secret values."""
        values = sorted(
            {v for v in secret_values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._values_re = re.compile("|".join(map(re.escape, values))) if values else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """A scrubber for every secret value set in the settings."""
        return cls(settings.secret_values())

    def scrub_text(self, text: str) -> str:
        """The text with secret values, Bearer tokens and URL credentials replaced."""
        if self._values_re is not None:
            text = self._values_re.sub(FILTERED, text)
        text = _BEARER_RE.sub(rf"\1 {FILTERED}", text)
        text = _URL_PASSWORD_RE.sub(rf"\1:{FILTERED}@", text)
        if "=" in text:
            text = _QUERY_PARAM_RE.sub(self._scrub_query_param, text)
        return text

    @staticmethod
    def _scrub_query_param(match: re.Match[str]) -> str:
        """One `name=value` query parameter, its value filtered when the name is secret."""
        sep, name, value = match.groups()
        return f"{sep}{name}={FILTERED}" if value and is_secret_key(name) else match.group(0)

    def scrub(self, value: Any) -> Any:
        """A copy of value (dicts, lists, tuples, strings, recursively) with secrets filtered."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {
                key: (
                    FILTERED
                    if isinstance(key, str) and value_ is not None and is_secret_key(key)
                    else self.scrub(value_)
                )
                for key, value_ in value.items()
            }
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.scrub(item) for item in value)
        return value

    def before_send(self, event: Any, hint: Any = None) -> Any:
        """Sentry before_send: structlog fields added to extra, then the event scrubbed."""
        fields = _structlog_fields(hint)
        if fields:
            extra = event.setdefault("extra", {})
            for key, value in fields.items():
                extra.setdefault(key, value)
        return self.scrub(event)

    def before_breadcrumb(self, crumb: Any, hint: Any = None) -> Any:
        """Sentry before_breadcrumb: structlog fields added to data, then the crumb scrubbed."""
        fields = _structlog_fields(hint)
        if fields:
            data = crumb.get("data") or {}
            crumb["data"] = {**fields, **data}
        return self.scrub(crumb)

    def processor(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """structlog processor: the event dict scrubbed (run just before rendering)."""
        return {
            key: value if key in _UNSCRUBBED_LOG_KEYS else self.scrub({key: value})[key]
            for key, value in event_dict.items()
        }


# Left for the exception renderers (the rendered line is still scrubbed as text).
_UNSCRUBBED_LOG_KEYS = frozenset({"exc_info", "stack_info"})
_RENDERED_KEYS = frozenset({"event", "level", "logger", "timestamp", "exc_info", "stack_info"})


def _structlog_fields(hint: Any) -> dict[str, Any]:
    """The context fields of a structlog log record in a Sentry hint, if there is one."""
    record = hint.get("log_record") if isinstance(hint, Mapping) else None
    message = getattr(record, "msg", None)
    if not isinstance(message, Mapping):
        return {}
    return {
        key: value
        for key, value in message.items()
        if key not in _RENDERED_KEYS and not key.startswith("_")
    }


_scrubber: Scrubber | None = None


def _active_scrubber() -> Scrubber:
    """The scrubber built by the last configure_logging or init_sentry (else from settings)."""
    global _scrubber
    if _scrubber is None:
        from virtuna.config import get_settings

        _scrubber = Scrubber.from_settings(get_settings())
    return _scrubber


def scrub_event(event: Any, hint: Any = None) -> Any:
    """Sentry before_send with the active settings' secrets: the event with secrets filtered."""
    return _active_scrubber().before_send(event, hint)


@functools.lru_cache(maxsize=16)
def _scrubber_for(secret_values: tuple[str, ...]) -> Scrubber:
    return Scrubber(secret_values)


def scrub_secrets(value: Any, settings: Settings | None = None) -> Any:
    """value (text, or lists and dicts of it) with every configured secret filtered out.

    For text that is stored or returned (error messages, warnings): the settings' secret values
    (the active settings when None), Bearer tokens and URL credentials become [Filtered].
    """
    scrubber = (
        _active_scrubber() if settings is None else _scrubber_for(tuple(settings.secret_values()))
    )
    return scrubber.scrub(value)


# --------------------------------------------------------------------------- logging


class _EventDict(dict[str, Any]):
    """structlog's event dict carried as a LogRecord's msg; str() is the event text."""

    def __str__(self) -> str:
        """The event text, so other handlers (Sentry, pytest) see a readable message."""
        return str(self.get("event", ""))


def _to_stdlib(
    logger: logging.Logger, method_name: str, event_dict: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Final structlog processor: wrap for ProcessorFormatter and pass exc_info to the record."""
    kwargs: dict[str, Any] = {"extra": {"_logger": logger, "_name": method_name}}
    exc_info = event_dict.get("exc_info")
    if exc_info:
        # Also on the record so Sentry's logging integration sees the real exception.
        kwargs["exc_info"] = exc_info
    return (_EventDict(event_dict),), kwargs


class _ScrubbedRenderer:
    """Runs a renderer, then filters secret values out of the rendered line."""

    def __init__(self, renderer: Callable[..., Any], scrubber: Scrubber) -> None:
        """Wrap renderer."""
        self._renderer = renderer
        self._scrubber = scrubber

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> str:
        """The rendered, scrubbed line."""
        return self._scrubber.scrub_text(str(self._renderer(logger, method_name, event_dict)))


class _VirtunaHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (marked so it can be replaced)."""


def _shared_processors() -> list[Any]:
    """Processors run on every line, from structlog and from stdlib logging alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(settings: Settings | None = None, *, stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging to write one renderer's lines to stream."""
    global _scrubber
    from virtuna.config import get_settings

    settings = settings if settings is not None else get_settings()
    stream = stream if stream is not None else sys.stderr
    level = getattr(logging, settings.virtuna_log_level)
    scrubber = Scrubber.from_settings(settings)
    _scrubber = scrubber

    renderer: Callable[..., Any]
    final: list[Any] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        scrubber.processor,
    ]
    if settings.virtuna_env == "production":
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        isatty = getattr(stream, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    final.append(_ScrubbedRenderer(renderer, scrubber))

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=final,
    )
    handler = _VirtunaHandler(stream)
    handler.setFormatter(formatter)
    handler.setLevel(level)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VirtunaHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)  # a uvicorn.Config(log_level=...) set it

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            _to_stdlib,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Not cached: configure_logging may run again (tests, CLI re-configuration).
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo configure_logging: remove its handler, go back to the library's quiet defaults and
    clear contextvars."""
    global _scrubber
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VirtunaHandler)]:
        root.removeHandler(old)
    root.setLevel(logging.WARNING)
    _library_defaults()
    structlog.contextvars.clear_contextvars()
    _scrubber = None


def _library_defaults() -> None:
    """Quiet as a library: lines go to stdlib logging under "virtuna.*" and show only where the
    caller configured logging (a NullHandler keeps Python's last-resort handler from printing
    them). structlog's own default would print every level to stdout."""
    logging.getLogger("virtuna").addHandler(logging.NullHandler())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # first: a filtered line costs next to nothing
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger whose lines carry logger=name (added by configure_logging's chain)."""
    # Not get_logger(name, logger=name): `logger` collides with wrap_logger's own parameter.
    return structlog.stdlib.get_logger(name)


# --------------------------------------------------------------------------- request context


class RequestId(str):
    """A bound request id; as a context manager it restores the previous binding on exit."""

    _tokens: Mapping[str, contextvars.Token[Any]]

    def __enter__(self) -> str:
        """The request id (already bound)."""
        return str(self)

    def __exit__(self, *exc_info: object) -> None:
        """Restore the request_id bound before this one."""
        structlog.contextvars.reset_contextvars(**self._tokens)


def bind_request(request_id: str | None = None) -> RequestId:
    """Bind request_id (a new short random id when None) to every following line; return it."""
    value = request_id or secrets.token_hex(6)
    bound = RequestId(value)
    bound._tokens = structlog.contextvars.bind_contextvars(request_id=value)
    return bound


# --------------------------------------------------------------------------- stages

_current_stage: contextvars.ContextVar[Stage | None] = contextvars.ContextVar(
    "virtuna_stage", default=None
)
_stage_log = get_logger(STAGE_LOGGER)
_sentry_on = False  # set by init_sentry


def _breadcrumb(message: str, data: dict[str, Any]) -> None:
    """A Sentry breadcrumb of a stage, when `init_sentry` turned Sentry on (a dozen per
    analysis otherwise cost a millisecond for nothing, and even asking the SDK whether it is
    on costs 60 us)."""
    if _sentry_on:
        import sentry_sdk

        sentry_sdk.add_breadcrumb(
            category="virtuna.stage", message=message, level="info", data=data
        )


class Stage:
    """A named, timed unit of work: a context manager (sync or async) and a decorator."""

    def __init__(self, name: str, /, **fields: Any) -> None:
        """A stage called name; fields are added to its completion line."""
        self.name = name
        self.fields: dict[str, Any] = dict(fields)
        self.cost_cents = 0.0
        self.duration_ms: float | None = None
        self._start = 0.0
        self._tokens: Mapping[str, contextvars.Token[Any]] = {}
        self._stage_token: contextvars.Token[Stage | None] | None = None

    def add_cost(self, cents: float) -> None:
        """Add to this stage's own cost (nested stages keep theirs, so lines sum correctly)."""
        self.cost_cents += cents

    def __enter__(self) -> Stage:
        """Bind stage=name, leave a Sentry breadcrumb and start the clock."""
        self._tokens = structlog.contextvars.bind_contextvars(stage=self.name)
        self._stage_token = _current_stage.set(self)
        _breadcrumb(self.name, dict(self.fields))
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Log the outcome, report a failure to Sentry, restore the outer stage; never swallow."""
        self.duration_ms = round((time.perf_counter() - self._start) * 1000, 1)
        try:
            if exc is None:
                self._complete()
            elif isinstance(exc, Exception):
                self._fail(exc)
            else:  # cancellation, KeyboardInterrupt, SystemExit: not an error of the stage
                _stage_log.warning(
                    "stage interrupted",
                    duration_ms=self.duration_ms,
                    error=type(exc).__name__,
                    **self.fields,
                )
        finally:
            # ValueError: exited in another context than entered; never mask the real error.
            with contextlib.suppress(ValueError):
                if self._stage_token is not None:
                    _current_stage.reset(self._stage_token)
                structlog.contextvars.reset_contextvars(**self._tokens)
            self._stage_token = None

    async def __aenter__(self) -> Stage:
        """Async form of __enter__."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of __exit__."""
        self.__exit__(exc_type, exc, tb)

    def _outcome(self) -> dict[str, Any]:
        """request_id, duration_ms, cost_cents (0 when nothing was spent) and the caller's fields.

        Every stage line carries all four of request_id, stage, duration_ms and cost_cents
        (request_id is None outside a request), so lines can be summed and joined without gaps.
        """
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        return {
            **self.fields,
            "request_id": request_id,
            "duration_ms": self.duration_ms,
            "cost_cents": self.cost_cents,
        }

    def _complete(self) -> None:
        """Log `stage complete` and leave a closing breadcrumb."""
        outcome = self._outcome()
        _stage_log.info("stage complete", **outcome)
        _breadcrumb(f"{self.name} complete", outcome)

    def _fail(self, exc: Exception) -> None:
        """Capture exc in Sentry (tagged with the stage) and log `stage failed`."""
        import sentry_sdk

        request_id = structlog.contextvars.get_contextvars().get("request_id")
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("stage", self.name)
            if request_id:
                scope.set_tag("request_id", str(request_id))
            scope.set_context("stage", {"name": self.name, **self._outcome()})
            sentry_sdk.capture_exception(exc)
        # The traceback is logged once, by the innermost failing stage.
        first = not getattr(exc, "_virtuna_stage_logged", False)
        if first:
            with contextlib.suppress(AttributeError):  # exceptions with __slots__
                exc._virtuna_stage_logged = True  # type: ignore[attr-defined]
        details: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}", **self._outcome()}
        if first:
            details["exc_info"] = exc
        _stage_log.error("stage failed", **details)

    def __call__(self, func: F) -> F:
        """Decorate a sync or async function so each call runs in a fresh stage."""
        name, fields = self.name, self.fields

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Stage(name, **fields):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Stage(name, **fields):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def stage(name: str, /, **fields: Any) -> Stage:
    """A stage: `with stage("ingest", source=...) as s:` or `@stage("ingest")` (sync or async)."""
    return Stage(name, **fields)


def current_stage() -> Stage | None:
    """The innermost running stage in this context, if any."""
    return _current_stage.get()


def add_cost(cents: float) -> None:
    """Add cost to the innermost running stage (no-op outside a stage)."""
    running = _current_stage.get()
    if running is not None:
        running.add_cost(cents)


# --------------------------------------------------------------------------- Sentry


def init_sentry(settings: Settings | None = None, **extra_options: Any) -> bool:
    """Initialise Sentry when SENTRY_DSN is set; return whether it was initialised."""
    global _scrubber
    from virtuna.config import get_settings

    settings = settings if settings is not None else get_settings()
    log = get_logger("virtuna.sentry")
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        log.debug("sentry off", reason="SENTRY_DSN not set")
        return False
    import sentry_sdk
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
    from sentry_sdk.integrations.starlette import StarletteIntegration

    # Stage lines are reported to Sentry explicitly (breadcrumbs, capture_exception); keep the
    # logging integration from turning them into duplicate breadcrumbs or message events.
    ignore_logger(STAGE_LOGGER)
    scrubber = Scrubber.from_settings(settings)
    _scrubber = scrubber
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.virtuna_env,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # No user data, request bodies or frame locals (which may hold secrets) leave the process.
        data_collection={"user_info": False, "http_bodies": [], "stack_frame_variables": False},
        # Explicit, so an SDK upgrade cannot change what logging sends.
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            StarletteIntegration(),
            FastApiIntegration(),
        ],
        before_send=scrubber.before_send,
        before_breadcrumb=scrubber.before_breadcrumb,
        **extra_options,
    )
    global _sentry_on
    _sentry_on = True
    log.info("sentry on", environment=settings.virtuna_env)
    return True


if not structlog.is_configured():
    _library_defaults()
