"""Anthropic's Messages API: Claude as a fallback for every role.

`POST /v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`. The reply is
constrained with structured outputs (`output_config.format`, a JSON schema) rather than a
forced `tool_use` tool: current Claude models think adaptively by default, and forcing a tool
(`tool_choice` any or tool) is refused with thinking on; structured outputs put the JSON in
the first text block instead. The schema is `strict_schema` of the reply model (closed
objects, bounds moved into descriptions, as the feature requires); pydantic still validates.

The reply's `content[]` blocks are read in order, text blocks joined (thinking blocks
skipped); `stop_reason` max_tokens or model_context_window_exceeded marks a truncated reply,
refusal one not worth retrying (the next provider of the fallback order answers). `usage`
gives input_tokens (WITHOUT cache reads and writes), cache_read_input_tokens,
cache_creation_input_tokens and output_tokens (thinking included). Errors are
`{"type": "error", "error": {"type", "message"}}`: 429 rate_limit_error with `retry-after`,
529 overloaded_error and 500 api_error are retried, 401/403 are the key's fault.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from virtuna.engine.llm.base import (
    Extracted,
    ProviderClient,
    ProviderError,
    Role,
    error_body,
    http_error,
)
from virtuna.engine.llm.pricing import anthropic_usage_missing, usage_from_anthropic
from virtuna.engine.llm.schemas import strict_schema

__all__ = ["ANTHROPIC_VERSION", "AnthropicClient"]

ANTHROPIC_VERSION = "2023-06-01"
# Room for adaptive thinking plus the longest reply (about 1,500 tokens); a cap, not a cost.
MAX_TOKENS = 8_192
_TRUNCATED = ("max_tokens", "model_context_window_exceeded")
_GOOD_STOP = ("end_turn", "stop_sequence", "")
_AUTH_TYPES = ("authentication_error", "permission_error")


class AnthropicClient(ProviderClient):
    """Anthropic's messages endpoint with structured outputs, behind a circuit breaker."""

    provider = "anthropic"
    label = "Anthropic"
    key_variable = "ANTHROPIC_API_KEY"

    def _schema(self, role: Role, model_cls: type[BaseModel]) -> dict[str, Any] | None:
        """Every role with the reply model's JSON schema."""
        return strict_schema(model_cls)

    # ------------------------------------------------------------------ wire format

    def _url(self, model: str) -> str:
        """POST {base}/v1/messages."""
        return f"{self.base_url}/v1/messages"

    def _headers(self) -> dict[str, str]:
        """The key in x-api-key, the pinned API version."""
        return {
            "x-api-key": self._api_key or "",
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
        }

    def _body(self, prompt: str, model: str, schema: dict[str, Any] | None) -> dict[str, Any]:
        """One user turn; JSON output constrained to schema when given."""
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt}],
        }
        if schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return body

    def _extract(self, data: Any) -> Extracted:
        """The text blocks of content[] joined, the stop reason, and usage."""
        data = data if isinstance(data, dict) else {}
        raw_usage = data.get("usage")
        usage, missing = usage_from_anthropic(raw_usage), anthropic_usage_missing(raw_usage)
        blocks = data.get("content") if isinstance(data.get("content"), list) else []
        texts = [
            block.get("text") or ""
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        text = "".join(texts) if texts else None
        stop = str(data.get("stop_reason") or "")
        if stop == "refusal":
            return Extracted(text, usage, missing, "stop_reason refusal", retryable=False)
        note = None if stop in _GOOD_STOP else f"stop_reason {stop}"
        if stop in _TRUNCATED:
            note = f"truncated: stop_reason {stop}"
        return Extracted(text, usage, missing, note)

    def _error(self, response: httpx.Response) -> ProviderError:
        """{"type": "error", "error": {"type", "message"}} as a ProviderError (529
        overloaded_error is retried like any 5xx)."""
        error, message = error_body(response)
        kind = str(error.get("type") or "")
        auth = response.status_code in (401, 403) or kind in _AUTH_TYPES
        return http_error(response.status_code, kind, message, auth=auth)
