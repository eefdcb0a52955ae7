"""Fake Gemini, DeepSeek, Anthropic and OpenAI REST APIs on 127.0.0.1 speaking the providers'
real wire formats.

    with FakeGemini() as gemini, FakeDeepSeek() as deepseek, FakeAnthropic() as claude:
        gemini.status(429, "Resource has been exhausted").ok(valid_gemini_analysis())
        deepseek.delay(5)                        # provoke a client timeout
        claude.status(529, retry_after=1)        # overloaded_error, retry-after: 1
        settings = llm_settings(gemini, deepseek, anthropic=claude)
        ...
        assert gemini.served == 2

Each fake answers from a scripted queue of behaviours (`ok`, `status`, `delay`, `blank`,
`fenced`, `invalid`, `timeout`, `malformed`, `refuse`), then from its default factory (a valid
reply for the request: the reply model is read from the request's schema or prompt). A fixed
`latency` (seconds) is added to every answer. Every request, rejected ones included, is
recorded in `requests`; counters are thread-safe.

`timeout` makes the client time out without any clock: the fake answers with the marker
header `X-Fake-Timeout`, and a client built with `timeout_transport()` turns that answer into
the `httpx.ReadTimeout` a real read timeout raises. So the fake decides which requests time
out, whatever the machine's load (`delay` still exists for tests of the clock itself).

Authentication follows the real services: Gemini wants `x-goog-api-key` (a missing key gets
403 PERMISSION_DENIED, a wrong one 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as the
real API answers), DeepSeek wants `Authorization: Bearer` (401 authentication_error),
Anthropic wants `x-api-key` and `anthropic-version: 2023-06-01` (401 authentication_error,
400 invalid_request_error), OpenAI wants `Authorization: Bearer` (401 with code
invalid_api_key). Anthropic and OpenAI reject a response schema their structured outputs do
not take (an object without `additionalProperties: false`; for OpenAI's strict mode a property
left out of `required`; for Anthropic a numeric or length bound) with 400, as the real APIs do.
The fakes are written independently of `virtuna.engine.llm`, so they check the clients' format.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

import httpx
import pytest

from virtuna.config import Settings, load_settings

__all__ = [
    "TIMEOUT_HEADER",
    "FakeAnthropic",
    "FakeDeepSeek",
    "FakeGemini",
    "FakeOpenAI",
    "RecordedRequest",
    "TimeoutTransport",
    "fake_anthropic",
    "fake_deepseek",
    "fake_gemini",
    "fake_openai",
    "llm_settings",
    "timeout_transport",
    "valid_deepseek_reasoning",
    "valid_gemini_analysis",
    "valid_rule_evaluations",
]

FACTOR_NAMES = (
    "Scroll-Stop Power",
    "Completion Pull",
    "Rewatch Potential",
    "Share Trigger",
    "Emotional Charge",
)
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEEPSEEK_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_balance_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_overloaded",
}
_GEMINI_PATH = re.compile(r"^/v1beta/models/([^/:]+):generateContent$")
_GEMINI_MODELS = {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.0-flash"}
_DEEPSEEK_MODELS = {"deepseek-chat", "deepseek-reasoner"}
_ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_TYPE = {  # (type, code) as the API sends them
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_ANTHROPIC_MODELS = {"claude-haiku-5-5", "claude-sonnet-5-5", "claude-haiku-4-5"}
_OPENAI_MODELS = {"gpt-6-luna", "gpt-6-sol", "gpt-5.4-mini"}
_UNBOUNDED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_UNBOUNDED += ("minLength", "maxLength", "maxItems")
_RULE_LINE = re.compile(r"^\s*\d+\.\s+(.+?):\s")
TIMEOUT_HEADER = "X-Fake-Timeout"
MALFORMED_BODY = b'{"id": "cut off mid-answer", "content": [{"type": "te'


class TimeoutTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that raises ReadTimeout where a fake chose to time out."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send; an answer marked by the fake becomes the timeout a client would see."""
        response = await super().handle_async_request(request)
        if TIMEOUT_HEADER.lower() in (k.lower() for k in response.headers):
            await response.aclose()
            raise httpx.ReadTimeout("timed out (chosen by the fake)", request=request)
        return response


def timeout_transport() -> TimeoutTransport:
    """The transport for clients of fakes that script `timeout` (pooled like the default)."""
    return TimeoutTransport(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))


# --------------------------------------------------------------------------- valid replies


def valid_gemini_analysis(score: float = 6.5, **overrides: Any) -> dict[str, Any]:
    """A GeminiAnalysis reply with the 5 exact factor names."""
    reply: dict[str, Any] = {
        "factors": [
            {
                "name": name,
                "score": score,
                "rationale": f"The draft's {name.lower()} is solid but not exceptional.",
                "improvement_tip": f"Sharpen the {name.lower()} in the first two seconds.",
            }
            for name in FACTOR_NAMES
        ],
        "overall_impression": "A clear, relatable draft with a decent hook.",
        "content_summary": "A short cooking tip with a reveal at the end.",
    }
    reply.update(overrides)
    return reply


def valid_deepseek_reasoning(**overrides: Any) -> dict[str, Any]:
    """A DeepSeekReasoning reply (behavioural predictions, components, suggestions)."""
    reply: dict[str, Any] = {
        "behavioral_predictions": {
            "completion_pct": 42.5,
            "completion_percentile": "top 35%",
            "share_pct": 0.9,
            "share_percentile": "top 20%",
            "comment_pct": 0.35,
            "comment_percentile": "top 45%",
            "save_pct": 0.6,
            "save_percentile": "top 30%",
        },
        "component_scores": {
            "hook_effectiveness": 7.0,
            "retention_strength": 6.0,
            "shareability": 6.5,
            "comment_provocation": 4.0,
            "save_worthiness": 5.5,
            "trend_alignment": 5.0,
            "originality": 6.0,
        },
        "suggestions": [
            {"text": "Open with the finished dish.", "priority": "high", "category": "hook"},
            {"text": "Cut the intro to under 2 s.", "priority": "medium", "category": "format"},
            {"text": "Use a trending sound.", "priority": "low", "category": "audio"},
        ],
        "warnings": [],
        "confidence": "medium",
    }
    reply.update(overrides)
    return reply


def valid_rule_evaluations(names: list[str], score: float = 7.0) -> dict[str, Any]:
    """A RuleEvaluations reply scoring every named rule."""
    return {
        "evaluations": [
            {"rule_name": name, "score": score, "rationale": f"The draft fits {name}."}
            for name in names
        ]
    }


# --------------------------------------------------------------------------- plumbing


class RecordedRequest(NamedTuple):
    """One request a fake received (headers with lower-case names; json None when absent)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class _Behaviour:
    """One scripted answer."""

    kind: str  # ok | status | delay | blank | fenced | invalid | timeout | malformed | refuse
    body: Any = None
    code: int = 0
    message: str = ""
    seconds: float = 0.0
    usage: dict[str, Any] | None = None
    omit_usage: bool = False
    retry_after: float | None = None


class _Server(ThreadingHTTPServer):
    """The HTTP server; keeps a reference to its fake."""

    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent clients must queue, not be refused
    block_on_close = False
    fake: _FakeLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (timeouts are provoked on purpose)."""


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the fake."""

    protocol_version = "HTTP/1.1"
    timeout = 10
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed ACK)
    server: _Server

    def _dispatch(self) -> None:
        """Handle one request; a client that went away is not an error."""
        try:
            self.server.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


def _tokens(text: str) -> int:
    """A plausible token count for text (about 4 characters a token)."""
    return max(1, len(text) // 4)


def _reply_for(prompt: str, keys: set[str]) -> Any:
    """A valid reply of the kind asked for: by the schema's keys, else by the prompt."""
    if "factors" in keys or (not keys and '"factors"' in prompt):
        return valid_gemini_analysis()
    if "evaluations" in keys or (not keys and '"evaluations"' in prompt):
        names = [m.group(1) for line in prompt.splitlines() if (m := _RULE_LINE.match(line))]
        return valid_rule_evaluations(names)
    return valid_deepseek_reasoning()


def _out_of_bounds(reply: Any) -> Any:
    """reply with a score above 10: what constrained decoding lets through (bounds are not
    enforced by structured outputs), and what the reply models reject."""
    if "factors" in reply:
        reply["factors"][0]["score"] = 11.5
    elif reply.get("evaluations"):
        reply["evaluations"][0]["score"] = 14
    elif "component_scores" in reply:
        reply["component_scores"]["originality"] = 12
    return reply


def _schema_problem(node: Any, *, all_required: bool, bounds_allowed: bool) -> str | None:
    """Why a structured-output schema would be refused, or None."""
    if isinstance(node, list):
        return next(
            (
                p
                for n in node
                if (
                    p := _schema_problem(
                        n, all_required=all_required, bounds_allowed=bounds_allowed
                    )
                )
            ),
            None,
        )
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return "'additionalProperties' is required to be supplied and to be false"
        missing = set(node.get("properties", {})) - set(node.get("required", []))
        if all_required and missing:
            return f"'required' is required to include every property; missing {sorted(missing)}"
    if not bounds_allowed:
        used = [key for key in _UNBOUNDED if key in node]
        if used or node.get("minItems", 0) > 1:
            return f"unsupported schema keyword {(used or ['minItems'])[0]!r}"
    for key in ("properties", "$defs"):
        for sub in (node.get(key) or {}).values():
            if problem := _schema_problem(
                sub, all_required=all_required, bounds_allowed=bounds_allowed
            ):
                return problem
    for key in ("items", "anyOf"):
        if key in node and (
            problem := _schema_problem(
                node[key], all_required=all_required, bounds_allowed=bounds_allowed
            )
        ):
            return problem
    return None


class _FakeLLM:
    """The shared server, script queue and counters of both fakes."""

    provider: ClassVar[str]

    def __init__(self, api_key: str, *, latency: float = 0.0) -> None:
        """A stopped fake accepting api_key; `start()` or `with` runs it."""
        self.api_key = api_key
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.default: Callable[[RecordedRequest], Any] = self._default_reply
        self._queue: deque[_Behaviour] = deque()
        self._served = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve in a background thread and return once a request has been answered."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        httpx.get(f"{self.base_url}/_health", timeout=5).raise_for_status()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (delayed requests are cut short)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        """Start and return the fake."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the fake."""
        self.stop()

    # ------------------------------------------------------------------ script

    def _push(self, behaviour: _Behaviour, times: int) -> Self:
        """Queue behaviour times times."""
        with self._lock:
            self._queue.extend(_Behaviour(**behaviour.__dict__) for _ in range(times))
        return self

    def ok(
        self,
        body: dict[str, Any] | str,
        *,
        usage: dict[str, Any] | None = None,
        omit_usage: bool = False,
        times: int = 1,
    ) -> Self:
        """Answer with body as the model's text; usage replaces the usage object if given."""
        return self._push(_Behaviour("ok", body, usage=usage, omit_usage=omit_usage), times)

    def answer(self, *, times: int = 1) -> Self:
        """Queue the default (valid, request-aware) answer, to interleave with faults."""
        return self._push(_Behaviour("default"), times)

    def status(
        self,
        code: int,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        times: int = 1,
    ) -> Self:
        """Answer with an HTTP error in the provider's error format (and a retry-after)."""
        text = message or f"Injected {code} error"
        behaviour = _Behaviour("status", code=code, message=text, retry_after=retry_after)
        return self._push(behaviour, times)

    def malformed(self, *, times: int = 1) -> Self:
        """Answer 200 with a body cut off mid-JSON (a proxy or a dropped connection)."""
        return self._push(_Behaviour("malformed"), times)

    def refuse(self, *, times: int = 1) -> Self:
        """Answer 200 with the model's refusal (Anthropic and OpenAI)."""
        return self._push(_Behaviour("refuse"), times)

    def delay(self, seconds: float, *, times: int = 1) -> Self:
        """Hold the request for seconds, then answer with the default reply."""
        return self._push(_Behaviour("delay", seconds=seconds), times)

    def timeout(self, *, times: int = 1) -> Self:
        """Make the client time out at once (needs a client built with `timeout_transport()`)."""
        return self._push(_Behaviour("timeout"), times)

    def blank(self, *, times: int = 1) -> Self:
        """Answer 200 with empty model text (Gemini) or null content (DeepSeek)."""
        return self._push(_Behaviour("blank"), times)

    def fenced(self, body: dict[str, Any] | str, *, times: int = 1) -> Self:
        """Answer with body wrapped in a ```json Markdown fence."""
        return self._push(_Behaviour("fenced", body), times)

    def invalid(self, body: dict[str, Any] | str | None = None, *, times: int = 1) -> Self:
        """Answer with JSON that violates the schema (a typical violation when body is None)."""
        return self._push(_Behaviour("invalid", body), times)

    def clear(self) -> None:
        """Drop every queued behaviour."""
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """Behaviours still queued."""
        with self._lock:
            return len(self._queue)

    @property
    def served(self) -> int:
        """Requests answered so far (errors included, health checks not)."""
        with self._lock:
            return self._served

    @property
    def prompts(self) -> list[str]:
        """The prompt text of every recorded request, in order."""
        with self._lock:
            recorded = list(self.requests)
        return [self._prompt_of(r.json) for r in recorded]

    # ------------------------------------------------------------------ provider hooks

    def _prompt_of(self, body: Any) -> str:
        """The user prompt in a request body."""
        raise NotImplementedError

    def _check(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """An error (status, body) for an unauthenticated or malformed request, else None."""
        raise NotImplementedError

    def _default_reply(self, request: RecordedRequest) -> Any:
        """The model's JSON for a request when nothing is scripted."""
        raise NotImplementedError

    def _invalid_reply(self, request: RecordedRequest) -> Any:
        """A typical schema violation for this provider's replies."""
        raise NotImplementedError

    def _error_body(self, code: int, message: str) -> dict[str, Any]:
        """The provider's error body."""
        raise NotImplementedError

    def _success(
        self, request: RecordedRequest, text: str | None, behaviour: _Behaviour
    ) -> dict[str, Any]:
        """The provider's 200 body carrying the model's text."""
        raise NotImplementedError

    # ------------------------------------------------------------------ serving

    def _handle(self, handler: _Handler) -> None:
        """Record, authenticate, validate and answer one request from the script."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if handler.path == "/_health":
            self._send(handler, 200, {"ok": True})
            return
        request = RecordedRequest(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(request)
        problem = self._check(request)
        if problem is not None:
            self._answer(handler, *problem)
            return
        with self._lock:
            behaviour = self._queue.popleft() if self._queue else _Behaviour("default")
        if behaviour.kind == "delay":
            if self._stopping.wait(behaviour.seconds):
                handler.close_connection = True
                return
            behaviour = _Behaviour("default")
        if behaviour.kind == "status":
            extra = (
                {}
                if behaviour.retry_after is None
                else {"retry-after": f"{behaviour.retry_after:g}"}
            )
            self._answer(
                handler,
                behaviour.code,
                self._error_body(behaviour.code, behaviour.message),
                headers=extra,
            )
            return
        if behaviour.kind == "malformed":
            self._answer(handler, 200, MALFORMED_BODY)
            return
        if behaviour.kind == "timeout":
            self._answer(
                handler,
                504,
                self._error_body(504, "Deadline exceeded (timeout chosen by the fake)"),
                headers={TIMEOUT_HEADER: "read"},
            )
            return
        self._answer(
            handler, 200, self._success(request, self._text(request, behaviour), behaviour)
        )

    def _text(self, request: RecordedRequest, behaviour: _Behaviour) -> str | None:
        """The model text a behaviour produces."""
        if behaviour.kind in ("blank", "refuse"):
            return None
        if behaviour.kind == "default" or (behaviour.kind == "fenced" and behaviour.body is None):
            body = self.default(request)
        elif behaviour.kind == "invalid" and behaviour.body is None:
            body = self._invalid_reply(request)
        else:
            body = behaviour.body
        text = body if isinstance(body, str) else json.dumps(body, indent=2)
        if behaviour.kind == "fenced":
            text = f"```json\n{text}\n```"
        return text

    def _answer(
        self, handler: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Wait the fixed latency, count and send."""
        if self.latency and self._stopping.wait(self.latency):
            handler.close_connection = True
            return
        with self._lock:
            self._served += 1
        self._send(handler, status, payload, headers)

    @staticmethod
    def _send(
        handler: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Write a JSON response with a Content-Length (keep-alive friendly); bytes go as is."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


# --------------------------------------------------------------------------- Gemini


class FakeGemini(_FakeLLM):
    """A fake `POST /v1beta/models/{model}:generateContent` (Gemini API, API-key auth)."""

    provider = "gemini"

    def __init__(self, api_key: str = "AIzaFakeGeminiKey0123456789abcdefghijk", **kwargs: Any):
        """A stopped fake accepting this x-goog-api-key."""
        super().__init__(api_key, **kwargs)
        self.thoughts_tokens = 320  # gemini-2.5-flash thinks by default

    def _prompt_of(self, body: Any) -> str:
        """contents[-1].parts[*].text."""
        try:
            return "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
        except (KeyError, IndexError, TypeError, AttributeError):
            return ""

    def _check(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """Gemini's answers to a missing/wrong key, unknown model or malformed body."""
        key = request.headers.get("x-goog-api-key")
        if not key:
            message = (
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API."
            )
            return 403, self._error_body(403, message)
        if key != self.api_key:
            body = self._error_body(400, "API key not valid. Please pass a valid API key.")
            body["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            return 400, body
        match = _GEMINI_PATH.match(request.path)
        if request.method != "POST" or match is None:
            return 404, self._error_body(404, f"Method not found: {request.method} {request.path}")
        model = match.group(1)
        if model not in _GEMINI_MODELS:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent."
            )
            return 404, self._error_body(404, message)
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return 400, self._error_body(
                400, "* GenerateContentRequest.contents: contents is not specified"
            )
        if not self._prompt_of(body):
            return 400, self._error_body(
                400, "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty."
            )
        config = body.get("generationConfig") or {}
        if "responseSchema" in config and config.get("responseMimeType") != "application/json":
            message = (
                "* GenerateContentRequest.generation_config.response_mime_type: "
                "response_mime_type must be one of application/json, text/x.enum when "
                "response_schema is set."
            )
            return 400, self._error_body(400, message)
        return None

    def _default_reply(self, request: RecordedRequest) -> Any:
        """The reply the responseSchema (or, without one, the prompt) asks for."""
        config = (request.json or {}).get("generationConfig") or {}
        keys = set((config.get("responseSchema") or {}).get("properties", {}))
        return _reply_for(self._prompt_of(request.json), keys)

    def _invalid_reply(self, request: RecordedRequest) -> Any:
        """An analysis with only 4 factors."""
        reply = valid_gemini_analysis()
        reply["factors"] = reply["factors"][:4]
        return reply

    def _error_body(self, code: int, message: str) -> dict[str, Any]:
        """{"error": {"code", "message", "status"}}."""
        return {
            "error": {
                "code": code,
                "message": message,
                "status": _GEMINI_STATUS.get(code, "UNKNOWN"),
            }
        }

    def _success(
        self, request: RecordedRequest, text: str | None, behaviour: _Behaviour
    ) -> dict[str, Any]:
        """A generateContent response with usageMetadata."""
        model = _GEMINI_PATH.match(request.path).group(1)  # type: ignore[union-attr]
        prompt_tokens = _tokens(self._prompt_of(request.json))
        output_tokens = _tokens(text) if text else 0
        thoughts = self.thoughts_tokens
        usage = behaviour.usage or {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + thoughts,
            "thoughtsTokenCount": thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        reply: dict[str, Any] = {
            "candidates": [
                {
                    "content": {"parts": [{"text": text or ""}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "modelVersion": model,
            "responseId": secrets.token_urlsafe(16),
        }
        if not behaviour.omit_usage:
            reply["usageMetadata"] = usage
        return reply


# --------------------------------------------------------------------------- DeepSeek


class FakeDeepSeek(_FakeLLM):
    """A fake `POST /chat/completions` (DeepSeek API, OpenAI-compatible, Bearer auth)."""

    provider = "deepseek"

    def __init__(self, api_key: str = "sk-fakedeepseek0123456789abcdef", **kwargs: Any):
        """A stopped fake accepting this Bearer key."""
        super().__init__(api_key, **kwargs)
        self.reasoning_tokens = 900  # deepseek-reasoner's chain of thought
        self.cache_hit_tokens = 0

    def _prompt_of(self, body: Any) -> str:
        """messages[-1].content."""
        try:
            return str(body["messages"][-1]["content"] or "")
        except (KeyError, IndexError, TypeError):
            return ""

    def _check(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """DeepSeek's answers to a bad key, unknown model, bad body or JSON mode misuse."""
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")[-4:]
            message = f"Authentication Fails, Your api key: ****{shown} is invalid"
            return 401, self._error_body(401, message)
        if request.method != "POST" or request.path not in (
            "/chat/completions",
            "/v1/chat/completions",
        ):
            return 404, self._error_body(404, f"Not Found: {request.path}")
        body = request.json
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("messages"), list)
            or not body["messages"]
        ):
            return 422, self._error_body(
                422, "Failed to deserialize the JSON body: missing field `messages`"
            )
        if body.get("model") not in _DEEPSEEK_MODELS:
            return 400, self._error_body(400, "Model Not Exist")
        response_format = body.get("response_format") or {}
        wants_json = response_format.get("type") == "json_object"
        texts = " ".join(
            str(m.get("content") or "") for m in body["messages"] if isinstance(m, dict)
        )
        if wants_json and "json" not in texts.lower():
            message = (
                "Prompt must contain the word 'json' in some form to use 'response_format' of "
                "type 'json_object'."
            )
            return 400, self._error_body(400, message)
        if body.get("stream"):
            return 400, self._error_body(400, "The fake serves stream=false only")
        return None

    def _default_reply(self, request: RecordedRequest) -> Any:
        """Rule evaluations for the listed rules, content factors or a reasoning reply, as the
        prompt asks."""
        return _reply_for(self._prompt_of(request.json), set())

    def _invalid_reply(self, request: RecordedRequest) -> Any:
        """A reasoning reply without component_scores and with no suggestions."""
        reply = valid_deepseek_reasoning(suggestions=[])
        del reply["component_scores"]
        return reply

    def _error_body(self, code: int, message: str) -> dict[str, Any]:
        """{"error": {"message", "type", "param", "code"}}."""
        return {
            "error": {
                "message": message,
                "type": _DEEPSEEK_TYPE.get(code, "server_error"),
                "param": None,
                "code": "invalid_request_error" if code < 500 else "server_error",
            }
        }

    def _success(
        self, request: RecordedRequest, text: str | None, behaviour: _Behaviour
    ) -> dict[str, Any]:
        """A chat.completion with usage (reasoning tokens inside completion_tokens)."""
        model = request.json["model"]
        reasoner = model == "deepseek-reasoner"
        prompt_tokens = _tokens(self._prompt_of(request.json))
        reasoning = self.reasoning_tokens if reasoner else 0
        completion = (_tokens(text) if text else 0) + reasoning
        hits = min(self.cache_hit_tokens, prompt_tokens)
        usage: dict[str, Any] = behaviour.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": hits},
            "prompt_cache_hit_tokens": hits,
            "prompt_cache_miss_tokens": prompt_tokens - hits,
        }
        if reasoner and not behaviour.usage:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoner:
            message["reasoning_content"] = "Step 1: the hook... Step 5: final predictions."
        reply: dict[str, Any] = {
            "id": secrets.token_hex(16),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "system_fingerprint": "fp_fake_0001",
        }
        if not behaviour.omit_usage:
            reply["usage"] = usage
        return reply


# --------------------------------------------------------------------------- Anthropic


class FakeAnthropic(_FakeLLM):
    """A fake `POST /v1/messages` (Anthropic Messages API, x-api-key auth, structured outputs)."""

    provider = "anthropic"
    version = "2023-06-01"

    def __init__(self, api_key: str = "sk-ant-api03-fakeanthropic0123456789", **kwargs: Any):
        """A stopped fake accepting this x-api-key."""
        super().__init__(api_key, **kwargs)
        self.thinking_tokens = 240  # adaptive thinking, counted in output_tokens
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0

    def _prompt_of(self, body: Any) -> str:
        """messages[-1].content (a string or text blocks)."""
        try:
            content = body["messages"][-1]["content"]
        except (KeyError, IndexError, TypeError):
            return ""
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
        return str(content or "")

    def _schema(self, body: Any) -> dict[str, Any]:
        """output_config.format.schema, or {}."""
        config = (body or {}).get("output_config") or {}
        return (config.get("format") or {}).get("schema") or {}

    def _check(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """Anthropic's answers to a bad key or version, unknown model or malformed body."""
        if request.headers.get("x-api-key") != self.api_key:
            return 401, self._error_body(401, "invalid x-api-key")
        if request.headers.get("anthropic-version") != self.version:
            return 400, self._error_body(400, "anthropic-version: header is required")
        if request.method != "POST" or request.path != "/v1/messages":
            return 404, self._error_body(404, f"Not Found: {request.path}")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 400, self._error_body(400, "messages: Field required")
        if not isinstance(body.get("max_tokens"), int):
            return 400, self._error_body(400, "max_tokens: Field required")
        if body.get("model") not in _ANTHROPIC_MODELS:
            return 404, self._error_body(404, f"model: {body.get('model')}")
        if "output_config" in body:
            fmt = (body["output_config"] or {}).get("format") or {}
            if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
                return 400, self._error_body(400, "output_config.format: invalid format")
            problem = _schema_problem(fmt["schema"], all_required=False, bounds_allowed=False)
            if problem:
                return 400, self._error_body(400, f"output_config.format.schema: {problem}")
        return None

    def _default_reply(self, request: RecordedRequest) -> Any:
        """The reply the request's schema (or prompt) asks for."""
        keys = set(self._schema(request.json).get("properties", {}))
        return _reply_for(self._prompt_of(request.json), keys)

    def _invalid_reply(self, request: RecordedRequest) -> Any:
        """Schema-shaped JSON with a score out of bounds."""
        return _out_of_bounds(self._default_reply(request))

    def _error_body(self, code: int, message: str) -> dict[str, Any]:
        """{"type": "error", "error": {"type", "message"}, "request_id"}."""
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPE.get(code, "api_error"), "message": message},
            "request_id": f"req_{secrets.token_hex(12)}",
        }

    def _success(
        self, request: RecordedRequest, text: str | None, behaviour: _Behaviour
    ) -> dict[str, Any]:
        """A message with a thinking block, the text block and usage."""
        refused = behaviour.kind == "refuse"
        content: list[dict[str, Any]] = [
            {"type": "thinking", "thinking": "", "signature": secrets.token_urlsafe(24)}
        ]
        if refused:
            content.append({"type": "text", "text": "I can't help with that request."})
        elif text:
            content.append({"type": "text", "text": text})
        prompt_tokens = _tokens(self._prompt_of(request.json))
        read = min(self.cache_read_tokens, prompt_tokens)
        written = min(self.cache_write_tokens, prompt_tokens - read)
        usage = behaviour.usage or {
            "input_tokens": prompt_tokens - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "output_tokens": (_tokens(text) if text else 0) + self.thinking_tokens,
            "service_tier": "standard",
        }
        reply: dict[str, Any] = {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": request.json["model"],
            "content": content,
            "stop_reason": "refusal" if refused else "end_turn",
            "stop_sequence": None,
        }
        if not behaviour.omit_usage:
            reply["usage"] = usage
        return reply


# --------------------------------------------------------------------------- OpenAI


class FakeOpenAI(_FakeLLM):
    """A fake `POST /v1/chat/completions` (OpenAI, Bearer auth, strict structured outputs)."""

    provider = "openai"

    def __init__(self, api_key: str = "sk-proj-fakeopenai0123456789abcdef", **kwargs: Any):
        """A stopped fake accepting this Bearer key."""
        super().__init__(api_key, **kwargs)
        self.reasoning_tokens = 192  # counted in completion_tokens
        self.cached_tokens = 0

    def _prompt_of(self, body: Any) -> str:
        """messages[-1].content."""
        try:
            return str(body["messages"][-1]["content"] or "")
        except (KeyError, IndexError, TypeError):
            return ""

    def _json_schema(self, body: Any) -> dict[str, Any]:
        """response_format.json_schema, or {}."""
        return ((body or {}).get("response_format") or {}).get("json_schema") or {}

    def _check(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """OpenAI's answers to a bad key, unknown model, bad body or a non-strict schema."""
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")[-4:]
            message = f"Incorrect API key provided: sk-...{shown}."
            return 401, self._error_body(401, message)
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return 404, self._error_body(404, f"Invalid URL (POST {request.path})")
        body = request.json
        if not isinstance(body, dict) or not body.get("messages"):
            return 400, self._error_body(400, "Missing required parameter: 'messages'.")
        if body.get("model") not in _OPENAI_MODELS:
            return 404, self._error_body(404, f"The model `{body.get('model')}` does not exist.")
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            name = str(spec.get("name") or "")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                return 400, self._error_body(400, "Invalid 'response_format.json_schema.name'.")
            if spec.get("strict") is True:
                problem = _schema_problem(
                    spec.get("schema"), all_required=True, bounds_allowed=True
                )
                if problem:
                    message = f"Invalid schema for response_format '{name}': {problem}."
                    return 400, self._error_body(400, message)
        return None

    def _default_reply(self, request: RecordedRequest) -> Any:
        """The reply the request's schema (or prompt) asks for."""
        keys = set((self._json_schema(request.json).get("schema") or {}).get("properties", {}))
        return _reply_for(self._prompt_of(request.json), keys)

    def _invalid_reply(self, request: RecordedRequest) -> Any:
        """Schema-shaped JSON with a score out of bounds."""
        return _out_of_bounds(self._default_reply(request))

    def _error_body(self, code: int, message: str) -> dict[str, Any]:
        """{"error": {"message", "type", "param", "code"}}."""
        kind, error_code = _OPENAI_TYPE.get(code, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": error_code}}

    def _success(
        self, request: RecordedRequest, text: str | None, behaviour: _Behaviour
    ) -> dict[str, Any]:
        """A chat.completion with usage (reasoning tokens inside completion_tokens)."""
        refused = behaviour.kind == "refuse"
        prompt_tokens = _tokens(self._prompt_of(request.json))
        completion = (_tokens(text) if text else 0) + self.reasoning_tokens
        cached = min(self.cached_tokens, prompt_tokens)
        usage = behaviour.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        message = {
            "role": "assistant",
            "content": None if refused else text,
            "refusal": "I'm sorry, I can't help with that." if refused else None,
            "annotations": [],
        }
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{secrets.token_urlsafe(18)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.json["model"],
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if not behaviour.omit_usage:
            reply["usage"] = usage
        return reply


# --------------------------------------------------------------------------- helpers


def llm_settings(
    gemini: FakeGemini | None = None,
    deepseek: FakeDeepSeek | None = None,
    *,
    anthropic: FakeAnthropic | None = None,
    openai: FakeOpenAI | None = None,
    **overrides: Any,
) -> Settings:
    """Settings pointing at the given fakes (a provider without a fake is not configured)."""
    values: dict[str, Any] = {}
    for name, fake in (
        ("gemini", gemini),
        ("deepseek", deepseek),
        ("anthropic", anthropic),
        ("openai", openai),
    ):
        values[f"{name}_api_key"] = fake.api_key if fake else None
        values[f"{name}_base_url"] = fake.base_url if fake else "http://127.0.0.1:9"
        values[f"{name}_timeout_s"] = 2.0
    values |= {
        "llm_max_retries": 2,
        "breaker_failure_threshold": 3,
        "breaker_backoff_s": "1,3,9",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A running FakeGemini, stopped after the test."""
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def fake_deepseek() -> Iterator[FakeDeepSeek]:
    """A running FakeDeepSeek, stopped after the test."""
    with FakeDeepSeek() as fake:
        yield fake


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running FakeAnthropic, stopped after the test."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running FakeOpenAI, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake
