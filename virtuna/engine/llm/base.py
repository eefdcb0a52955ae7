"""Machinery every provider shares: reply records, JSON parsing, retries, breaker, logging.

One request (`ProviderClient.request`) is ONE circuit-breaker call holding every attempt:
an invalid reply (blank, not JSON, schema violation) is retried at once with the prompt
prefixed by `RETRY_INSTRUCTION`; 429, 5xx and transport errors are retried with the same
prompt after a short backoff (1 s, then 3 s, or the answer's `retry-after` when longer: the
policy of `virtuna.retry`); an answer asking to wait longer than the last backoff step,
timeouts and other 4xx are not retried, so a fallback provider can answer instead. Every HTTP
attempt leaves an `LLMCallRecord` priced from its own usage, invalid replies included. A
request never raises: failures come back as an `LLMReply` with a status and a warning.

A `Task` is one role's request (content factors, behavioural reasoning, semantic rules) in
provider-neutral form; `ProviderClient.run` sends it with the model and response schema that
provider uses for the role.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, TypeVar

import httpx
import sentry_sdk
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState

from virtuna.config import Settings
from virtuna.engine.llm.breaker import CircuitBreaker, CircuitOpenError
from virtuna.engine.llm.pricing import Usage, cost_cents, price
from virtuna.log import Scrubber, add_cost, get_logger
from virtuna.retry import async_retrying, retryable

__all__ = [
    "RETRY_INSTRUCTION",
    "RULES_TIMEOUT_S",
    "CallStatus",
    "Extracted",
    "InvalidReply",
    "LLMCallRecord",
    "LLMReply",
    "ProviderClient",
    "ProviderError",
    "ReplyStatus",
    "Role",
    "Sleep",
    "Task",
    "error_body",
    "http_error",
    "parse_reply",
    "retry_prompt",
    "strip_fences",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
CallStatus = Literal["ok", "error", "timeout", "invalid"]
ReplyStatus = Literal["ok", "not-configured", "failed", "circuit-open"]
Sleep = Callable[[float], Awaitable[Any]]
Role = Literal["content", "reasoning", "rules"]

RETRY_INSTRUCTION = "Your previous response was not valid JSON matching the required schema"
DEFAULT_RETRY_BACKOFF_S: tuple[float, ...] = (1.0, 3.0)
RULES_TIMEOUT_S = 15.0  # the rules batch is one small call; a slow one is not worth waiting for
_ZERO = Decimal(0)
_FENCE_RE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```\s*$", re.DOTALL)

log = get_logger(__name__)


# --------------------------------------------------------------------------- records


@dataclass
class LLMCallRecord:
    """One HTTP attempt: what it cost, how long it took and how it ended."""

    provider: str
    model: str
    purpose: str
    usage: Usage
    usage_missing: bool
    cost_cents: Decimal
    latency_ms: float
    status: CallStatus
    error: str | None
    attempt: int

    @property
    def known_cost_cents(self) -> Decimal | None:
        """The cost as stored: None (unknown) when the attempt came back without usage."""
        return None if self.usage_missing else self.cost_cents


@dataclass
class LLMReply(Generic[T]):
    """The outcome of one request (its retries and any fallback included); never raised."""

    value: T | None
    provider: str
    model: str
    status: ReplyStatus
    cost_cents: Decimal = _ZERO
    warning: str | None = None
    calls: list[LLMCallRecord] = field(default_factory=list)
    fallback_used: bool = False

    @property
    def ok(self) -> bool:
        """Whether a validated value is present."""
        return self.status == "ok" and self.value is not None

    @property
    def usage_missing(self) -> bool:
        """Whether any answered attempt came without usage (its cost is then unknown, not 0)."""
        return any(call.usage_missing for call in self.calls)

    @property
    def usage(self) -> Usage:
        """Tokens summed over every attempt."""
        return Usage(
            input_tokens=sum(c.usage.input_tokens for c in self.calls),
            cached_tokens=sum(c.usage.cached_tokens for c in self.calls),
            output_tokens=sum(c.usage.output_tokens for c in self.calls),
            thinking_tokens=sum(c.usage.thinking_tokens for c in self.calls),
            cache_write_tokens=sum(c.usage.cache_write_tokens for c in self.calls),
        )


@dataclass(frozen=True)
class Task(Generic[M]):
    """One role's request, the same for every provider: prompt, reply model, purpose."""

    role: Role
    prompt: str
    model_cls: type[M]
    purpose: str
    soft_cap_cents: Decimal | None = None


# --------------------------------------------------------------------------- errors


class InvalidReply(ValueError):
    """The model answered, but not with JSON matching the schema."""

    def __init__(
        self,
        message: str,
        *,
        kind: Literal["blank", "not-json", "schema", "blocked"],
        fields: Sequence[str] = (),
        retryable: bool = True,
    ) -> None:
        """An invalid reply of kind; fields name the failing schema locations."""
        super().__init__(message)
        self.kind = kind
        self.fields = tuple(fields)
        self.retryable = retryable


class ProviderError(Exception):
    """An HTTP attempt failed: error status, timeout or transport error."""

    def __init__(
        self,
        message: str,
        *,
        kind: Literal["http", "timeout", "transport"],
        status_code: int | None = None,
        retryable: bool = False,
        caller_fault: bool = False,
        auth: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """A failed attempt; caller_fault errors do not count against the circuit breaker."""
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code
        self.retryable = retryable
        self.caller_fault = caller_fault
        self.auth = auth
        self.retry_after_s = retry_after_s


# --------------------------------------------------------------------------- parsing


def strip_fences(text: str) -> str:
    """The text without a surrounding Markdown code fence (```json ... ``` or ``` ... ```)."""
    match = _FENCE_RE.match(text)
    return match.group(1).strip() if match else text.strip()


def _loads(text: str) -> Any:
    """JSON from text; falls back to the outermost {...} when prose surrounds it."""
    try:
        return json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise
        return json.loads(text[start : end + 1])


def parse_reply(text: str | None, model_cls: type[M]) -> M:
    """Validate a model's text against model_cls, raising InvalidReply naming the problem."""
    if text is None or not text.strip():
        raise InvalidReply("blank reply (no content)", kind="blank")
    body = strip_fences(text)
    if not body:
        raise InvalidReply("blank reply (empty code fence)", kind="blank")
    try:
        data = _loads(body)
    except ValueError as exc:
        snippet = " ".join(body.split())[:80]
        raise InvalidReply(f"not JSON ({exc}): {snippet!r}", kind="not-json") from None
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        fields: list[str] = []
        for error in exc.errors(include_url=False):
            loc = ".".join(str(part) for part in error["loc"]) or "(root)"
            fields.append(loc)
            problems.append(f"{loc}: {error['msg']}")
        shown = "; ".join(problems[:6]) + (
            f"; +{len(problems) - 6} more" if len(problems) > 6 else ""
        )
        raise InvalidReply(
            f"reply does not match {model_cls.__name__}: {shown}", kind="schema", fields=fields
        ) from None


def retry_prompt(prompt: str, problem: InvalidReply) -> str:
    """The prompt prefixed with the instruction that the previous answer was invalid."""
    reason = " ".join(str(problem).split())[:300]
    return (
        f"{RETRY_INSTRUCTION} ({reason}). Reply with only the JSON object, "
        f"without prose or code fences.\n\n{prompt}"
    )


def retry_after_s(response: httpx.Response) -> float | None:
    """The `retry-after` header in seconds (the delay form Anthropic and OpenAI send)."""
    raw = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_body(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The `error` object of an error answer and its message (the body's start if not JSON)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}, response.text[:200]
    error = error if isinstance(error, dict) else {}
    return error, str(error.get("message") or "")


def http_error(code: int, kind: str, message: str, *, auth: bool) -> ProviderError:
    """An error answer as a ProviderError: 429 and 5xx are retried; the request's own faults
    (400, 404, 413, 422) do not count against the breaker."""
    text = f"HTTP {code}" + (f" {kind}" if kind else "") + (f": {message}" if message else "")
    return ProviderError(
        text,
        kind="http",
        status_code=code,
        retryable=code == 429 or code >= 500,
        caller_fault=code in (400, 404, 413, 422) and not auth,
        auth=auth,
    )


def _counts_against_provider(exc: BaseException) -> bool:
    """Breaker policy: everything but the caller's own mistakes (bad request shape)."""
    return not getattr(exc, "caller_fault", False)


# --------------------------------------------------------------------------- client


@dataclass
class Extracted:
    """What a provider's 200 response holds: text, usage and a note on odd endings."""

    text: str | None
    usage: Usage
    usage_missing: bool
    note: str | None = None
    retryable: bool = True


class ProviderClient:
    """The shared request loop; subclasses supply the wire format of one provider."""

    provider: ClassVar[str]  # also the prefix of its settings: <provider>_api_key, _model...
    label: ClassVar[str]
    key_variable: ClassVar[str]

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        retry_backoff_s: Sequence[float] = DEFAULT_RETRY_BACKOFF_S,
    ) -> None:
        """A client from its provider's settings (<provider>_api_key, _base_url, _timeout_s,
        _model) with a breaker of its own unless one is given; without a key every request is
        `not-configured`. It closes `http` on aclose only when it created it.

        Error text it records or returns is scrubbed of every configured secret, since
        providers may echo a key back in an error message.
        """
        key = getattr(settings, f"{self.provider}_api_key")
        self._api_key = key.get_secret_value() if key else None
        self._scrubber = Scrubber(settings.secret_values())
        self.base_url = getattr(settings, f"{self.provider}_base_url").rstrip("/")
        self.timeout_s: float = getattr(settings, f"{self.provider}_timeout_s")
        self.model: str = getattr(settings, f"{self.provider}_model")
        self.max_retries = settings.llm_max_retries
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self.breaker = breaker or CircuitBreaker(
            self.provider,
            failure_threshold=settings.breaker_failure_threshold,
            backoff_s=settings.breaker_backoff(),
        )
        self._sleep = sleep
        self.retry_backoff_s = tuple(retry_backoff_s) or (0.0,)
        self.rules_timeout_s = min(RULES_TIMEOUT_S, self.timeout_s)
        self._check_priced(self.model)

    @property
    def configured(self) -> bool:
        """Whether an API key is set."""
        return self._api_key is not None

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    def _check_priced(self, *models: str) -> None:
        """Fail fast (at construction) when a configured model has no price row."""
        if self.configured:
            for model in models:
                price(self.provider, model)

    # ------------------------------------------------------------------ provider hooks

    def _model_for(self, role: Role) -> str:
        """The model that serves role."""
        return self.model

    def _schema(self, role: Role, model_cls: type[BaseModel]) -> dict[str, Any] | None:
        """What constrains the reply to model_cls (None: JSON without a schema)."""
        return None

    def _check_prompt(self, prompt: str) -> None:
        """Raise ValueError for a prompt the provider would refuse (a programming error)."""

    def _url(self, model: str) -> str:
        """The endpoint for model."""
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        """Authentication and content headers."""
        raise NotImplementedError

    def _body(self, prompt: str, model: str, schema: dict[str, Any] | None) -> dict[str, Any]:
        """The JSON request body."""
        raise NotImplementedError

    def _extract(self, data: Any) -> Extracted:
        """Text and usage from a 200 response body."""
        raise NotImplementedError

    def _error(self, response: httpx.Response) -> ProviderError:
        """A ProviderError describing an error response."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the request

    def not_configured(self, model: str) -> LLMReply[Any]:
        """The reply for a request made without an API key (no HTTP, no breaker)."""
        return LLMReply(
            value=None,
            provider=self.provider,
            model=model,
            status="not-configured",
            warning=f"{self.label} not configured ({self.key_variable})",
        )

    async def run(self, task: Task[M]) -> LLMReply[M]:
        """Send a role's task with the model and reply schema this provider uses for the role
        (the semantic rules with the short rules timeout)."""
        return await self.request(
            task.prompt,
            task.model_cls,
            model=self._model_for(task.role),
            purpose=task.purpose,
            schema=self._schema(task.role, task.model_cls),
            timeout_s=self.rules_timeout_s if task.role == "rules" else None,
            soft_cap_cents=task.soft_cap_cents,
        )

    async def request(
        self,
        prompt: str,
        model_cls: type[M],
        *,
        model: str,
        purpose: str,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        soft_cap_cents: Decimal | None = None,
    ) -> LLMReply[M]:
        """Send prompt (with retries, through the breaker) and validate the reply."""
        if not self.configured:
            log.debug("llm request skipped", provider=self.provider, purpose=purpose)
            return self.not_configured(model)
        self._check_prompt(prompt)
        calls: list[LLMCallRecord] = []
        started = time.perf_counter()
        timeout = timeout_s if timeout_s is not None else self.timeout_s

        async def run() -> M:
            return await self._attempts(prompt, model_cls, model, purpose, schema, timeout, calls)

        reply: LLMReply[M]
        try:
            value = await self.breaker.call(run, is_failure=_counts_against_provider)
            reply = LLMReply(value, self.provider, model, "ok")
        except CircuitOpenError as exc:
            warning = f"{self.label} circuit breaker open; next probe in {exc.retry_in_s:.1f} s"
            reply = LLMReply(None, self.provider, model, "circuit-open", warning=warning)
        except (ProviderError, InvalidReply) as exc:
            reply = LLMReply(
                None, self.provider, model, "failed", warning=self._warning(exc, calls)
            )
        except Exception as exc:  # a bug must not take the prediction down; report it loudly
            sentry_sdk.capture_exception(exc)
            log.error("llm request crashed", provider=self.provider, purpose=purpose, exc_info=exc)
            warning = f"{self.label} request failed unexpectedly: {type(exc).__name__}: {exc}"
            reply = LLMReply(None, self.provider, model, "failed", warning=warning)
        if reply.warning:
            reply.warning = self._scrubber.scrub_text(reply.warning)
        reply.calls = calls
        reply.cost_cents = sum((call.cost_cents for call in calls), _ZERO)
        self._report(reply, purpose, started, soft_cap_cents)
        return reply

    async def _attempts(
        self,
        prompt: str,
        model_cls: type[M],
        model: str,
        purpose: str,
        schema: dict[str, Any] | None,
        timeout_s: float,
        calls: list[LLMCallRecord],
    ) -> M:
        """Every attempt of one request; raises the last error when all fail."""
        errors: list[BaseException] = []

        def backoff(state: RetryCallState) -> float:
            if isinstance(errors[-1], InvalidReply):
                return 0.0  # a malformed answer is asked for again at once
            # The n-th transient failure waits the n-th step (invalid replies do not count).
            transient = sum(isinstance(error, ProviderError) for error in errors)
            return self.retry_backoff_s[min(transient, len(self.retry_backoff_s)) - 1]

        policy = async_retrying(
            attempts=self.max_retries + 1,
            backoff=backoff,
            retry_on=self._worth_retrying,
            sleep=self._sleep,
        )
        async for attempt in policy:
            with attempt:
                last = errors[-1] if errors else None
                current = retry_prompt(prompt, last) if isinstance(last, InvalidReply) else prompt
                number = attempt.retry_state.attempt_number
                try:
                    return await self._attempt(
                        current, model_cls, model, purpose, schema, timeout_s, number, calls
                    )
                except (ProviderError, InvalidReply) as exc:
                    errors.append(exc)
                    raise
        raise AssertionError("unreachable: the policy returns or raises the last error")

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Retry what says it is retryable, unless the provider asks to wait longer than we
        ever back off: a fallback answers sooner."""
        asked = getattr(exc, "retry_after_s", None) or 0.0
        return retryable(exc) and asked <= max(self.retry_backoff_s)

    async def _attempt(
        self,
        prompt: str,
        model_cls: type[M],
        model: str,
        purpose: str,
        schema: dict[str, Any] | None,
        timeout_s: float,
        attempt: int,
        calls: list[LLMCallRecord],
    ) -> M:
        """One HTTP attempt, recorded in calls whatever happens."""
        usage, usage_missing = Usage(), False
        status: CallStatus = "error"
        error: str | None = None
        started = time.perf_counter()
        try:
            response = await self._post(prompt, model, schema, timeout_s)
            if response.status_code >= 300:
                error = self._error(response)
                error.retry_after_s = retry_after_s(response)
                if error.retry_after_s is not None:
                    error.args = (f"{error} (retry-after {error.retry_after_s:g} s)",)
                raise error
            try:
                data = response.json()
            except ValueError:
                raise ProviderError(
                    f"{self.label} answered HTTP {response.status_code} with a non-JSON body",
                    kind="http",
                    status_code=response.status_code,
                    retryable=True,
                ) from None
            extracted = self._extract(data)
            usage, usage_missing = extracted.usage, extracted.usage_missing
            try:
                value = parse_reply(extracted.text, model_cls)
            except InvalidReply as exc:
                if extracted.note:  # e.g. truncated (MAX_TOKENS) or a blocked prompt
                    raise InvalidReply(
                        f"{exc} ({extracted.note})",
                        kind=exc.kind,
                        fields=exc.fields,
                        retryable=extracted.retryable,
                    ) from None
                raise
            status = "ok"
            return value
        except InvalidReply as exc:
            status, error = "invalid", str(exc)
            raise
        except ProviderError as exc:
            status = "timeout" if exc.kind == "timeout" else "error"
            error = str(exc)
            usage_missing = exc.kind == "timeout"  # it may have been processed and billed
            raise
        except asyncio.CancelledError:
            error, usage_missing = "cancelled", True
            raise
        finally:
            calls.append(
                LLMCallRecord(
                    provider=self.provider,
                    model=model,
                    purpose=purpose,
                    usage=usage,
                    usage_missing=usage_missing,
                    cost_cents=cost_cents(self.provider, model, usage),
                    latency_ms=round((time.perf_counter() - started) * 1000, 1),
                    status=status,
                    error=None if error is None else self._scrubber.scrub_text(error),
                    attempt=attempt,
                )
            )

    async def _post(
        self, prompt: str, model: str, schema: dict[str, Any] | None, timeout_s: float
    ) -> httpx.Response:
        """POST the request with a per-request timeout (each phase and the whole exchange)."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._http.post(
                    self._url(model),
                    json=self._body(prompt, model, schema),
                    headers=self._headers(),
                    timeout=httpx.Timeout(timeout_s),
                )
        except (httpx.TimeoutException, TimeoutError):
            # Not retried: a request that used its whole timeout would likely use it again,
            # and the caller's fallback (or a partial result) is worth more than the wait.
            raise ProviderError(
                f"{self.label} timed out after {timeout_s:g} s", kind="timeout", retryable=False
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"{self.label} unreachable: {type(exc).__name__}: {exc}",
                kind="transport",
                retryable=True,
            ) from None

    # ------------------------------------------------------------------ reporting

    def _warning(self, exc: ProviderError | InvalidReply, calls: list[LLMCallRecord]) -> str:
        """A one-line warning naming why the request failed."""
        attempts = f"{len(calls)} attempt{'s' if len(calls) != 1 else ''}"
        if isinstance(exc, ProviderError) and exc.auth:
            return f"{self.label} rejected the API key ({self.key_variable}): {exc}"
        if isinstance(exc, InvalidReply):
            return f"{self.label} reply invalid after {attempts}: {exc}"
        return f"{self.label} request failed after {attempts}: {exc}"

    def _report(
        self,
        reply: LLMReply[Any],
        purpose: str,
        started: float,
        soft_cap_cents: Decimal | None,
    ) -> None:
        """One log line and one Sentry breadcrumb per request; cost added to the stage."""
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        fields: dict[str, Any] = {
            "provider": self.provider,
            "model": reply.model,
            "purpose": purpose,
            "duration_ms": duration_ms,
            "cost_cents": float(reply.cost_cents),
            "status": reply.status,
            "attempts": len(reply.calls),
        }
        if reply.usage_missing:
            fields["usage_missing"] = True
        if reply.warning:
            fields["warning"] = reply.warning
        if reply.status == "ok":
            log.info("llm request", **fields)
        else:
            log.warning("llm request", **fields)
        sentry_sdk.add_breadcrumb(
            category=f"engine.{self.provider}",
            message=f"{purpose} {reply.status}",
            level="info" if reply.status == "ok" else "warning",
            data=fields,
        )
        if reply.cost_cents:
            add_cost(float(reply.cost_cents))
        if soft_cap_cents is not None and reply.cost_cents > soft_cap_cents:
            log.warning(
                "llm cost above soft cap",
                provider=self.provider,
                purpose=purpose,
                cost_cents=float(reply.cost_cents),
                soft_cap_cents=float(soft_cap_cents),
            )
