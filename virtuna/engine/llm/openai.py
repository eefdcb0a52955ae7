"""OpenAI's Chat Completions API with structured outputs: a fallback for every role.

`ChatCompletionsClient` holds the wire format OpenAI defined and DeepSeek also speaks: POST
`chat/completions` with Bearer authentication, the reply in `choices[0].message.content` (or a
`refusal`), `finish_reason`, usage in `prompt_tokens` (cached ones in
`prompt_tokens_details.cached_tokens`) and `completion_tokens` (reasoning ones in
`completion_tokens_details.reasoning_tokens`), errors as `{"error": {"message", "type",
"code"}}`. `OpenAIClient` asks for `response_format` `json_schema` with `strict: true`, whose
schema must close every object and require every property: `strict_schema` adapts the
pydantic models to that (bounds move into descriptions; pydantic still checks the reply).
"""

from __future__ import annotations

from typing import Any, ClassVar

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
from virtuna.engine.llm.pricing import Usage, chat_usage_missing, usage_from_openai
from virtuna.engine.llm.schemas import strict_schema

__all__ = ["ChatCompletionsClient", "OpenAIClient"]

_BLOCKED_FINISH = ("content_filter",)
_AUTH_TYPES = ("authentication_error", "invalid_api_key")


class ChatCompletionsClient(ProviderClient):
    """The Chat Completions wire format; subclasses choose the path, body and usage fields."""

    path: ClassVar[str] = "/v1/chat/completions"

    def _usage(self, raw: Any) -> Usage:
        """Usage from the reply's `usage` object."""
        return usage_from_openai(raw)

    def _url(self, model: str) -> str:
        """POST {base}{path}."""
        return f"{self.base_url}{self.path}"

    def _headers(self) -> dict[str, str]:
        """Bearer authentication."""
        return {
            "Authorization": f"Bearer {self._api_key or ''}",
            "Content-Type": "application/json",
        }

    def _extract(self, data: Any) -> Extracted:
        """choices[0].message.content (a refusal or content filter ends it), and usage."""
        data = data if isinstance(data, dict) else {}
        raw_usage = data.get("usage")
        usage, missing = self._usage(raw_usage), chat_usage_missing(raw_usage)
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return Extracted(None, usage, missing, "no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        content = message.get("content")
        text = content if isinstance(content, str) else None
        finish = str(choice.get("finish_reason") or "")
        refusal = message.get("refusal")
        if refusal or finish in _BLOCKED_FINISH:
            why = f"refused: {refusal}" if refusal else f"finish_reason {finish}"
            return Extracted(text, usage, missing, why, retryable=False)
        note = None if finish in ("stop", "") else f"finish_reason {finish}"
        return Extracted(text, usage, missing, note)

    def _error(self, response: httpx.Response) -> ProviderError:
        """{"error": {"message", "type", "code"}} as a ProviderError."""
        error, message = error_body(response)
        kind = str(error.get("type") or error.get("code") or "")
        auth = response.status_code in (401, 403) or kind in _AUTH_TYPES
        return http_error(response.status_code, kind, message, auth=auth)


class OpenAIClient(ChatCompletionsClient):
    """OpenAI's chat/completions endpoint with strict structured outputs, behind a breaker."""

    provider = "openai"
    label = "OpenAI"
    key_variable = "OPENAI_API_KEY"

    def _schema(self, role: Role, model_cls: type[BaseModel]) -> dict[str, Any] | None:
        """Every role with the reply model's strict JSON schema, named after the model."""
        return {"name": model_cls.__name__, "strict": True, "schema": strict_schema(model_cls)}

    def _body(self, prompt: str, model: str, schema: dict[str, Any] | None) -> dict[str, Any]:
        """One user message; a strict json_schema response format (JSON mode without one)."""
        response_format: dict[str, Any] = (
            {"type": "json_schema", "json_schema": schema}
            if schema is not None
            else {"type": "json_object"}
        )
        return {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "response_format": response_format,
        }
