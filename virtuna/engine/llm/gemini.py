"""Gemini over its REST API (`generateContent`): the 5-factor content reading (structured
output via `responseSchema`) and plain JSON for the other roles it serves as a fallback.

Unlike the original, the prompt's niche is the draft's own niche (not a society id), every
request goes through the provider's circuit breaker, and costs come from the dated price
table using the reply's usageMetadata (thinking tokens included, nothing invented).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm.base import (
    Extracted,
    LLMReply,
    ProviderClient,
    ProviderError,
    Role,
    error_body,
    http_error,
)
from virtuna.engine.llm.pricing import gemini_usage_missing, usage_from_gemini
from virtuna.engine.llm.schemas import FACTOR_NAMES, GeminiAnalysis
from virtuna.engine.llm.tasks import content_task
from virtuna.engine.schema import ContentPayload

__all__ = ["GEMINI_ANALYSIS_SCHEMA", "GeminiClient"]

M = TypeVar("M", bound=BaseModel)

_AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED")
_GOOD_FINISH = ("STOP", "FINISH_REASON_UNSPECIFIED", "")

_FACTOR_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "name": {"type": "STRING", "enum": list(FACTOR_NAMES)},
        "score": {"type": "NUMBER", "minimum": 0, "maximum": 10},
        "rationale": {"type": "STRING"},
        "improvement_tip": {"type": "STRING"},
    },
    "required": ["name", "score", "rationale", "improvement_tip"],
    "propertyOrdering": ["name", "score", "rationale", "improvement_tip"],
}

# The OpenAPI subset Gemini accepts as responseSchema (upper-case types, no $ref).
GEMINI_ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "factors": {"type": "ARRAY", "items": _FACTOR_SCHEMA, "minItems": 5, "maxItems": 5},
        "overall_impression": {"type": "STRING"},
        "content_summary": {"type": "STRING"},
    },
    "required": ["factors", "overall_impression", "content_summary"],
    "propertyOrdering": ["factors", "overall_impression", "content_summary"],
}


class GeminiClient(ProviderClient):
    """Gemini's generateContent endpoint behind a circuit breaker."""

    provider = "gemini"
    label = "Gemini"
    key_variable = "GEMINI_API_KEY"

    async def analyze_content(
        self, payload: ContentPayload, baseline: CalibrationBaseline
    ) -> LLMReply[GeminiAnalysis]:
        """Score the draft on the 5 content factors (structured output, validated)."""
        return await self.run(content_task(payload, baseline))

    async def generate_json(self, prompt: str, model_cls: type[M], *, purpose: str) -> LLMReply[M]:
        """Any JSON reply validated against model_cls (JSON mime type, no responseSchema)."""
        return await self.request(prompt, model_cls, model=self.model, purpose=purpose)

    # ------------------------------------------------------------------ wire format

    def _schema(self, role: Role, model_cls: type[BaseModel]) -> dict[str, Any] | None:
        """The content factors with their response schema; other roles as plain JSON."""
        return GEMINI_ANALYSIS_SCHEMA if role == "content" else None

    def _url(self, model: str) -> str:
        """POST {base}/v1beta/models/{model}:generateContent."""
        return f"{self.base_url}/v1beta/models/{model.removeprefix('models/')}:generateContent"

    def _headers(self) -> dict[str, str]:
        """The API key travels in x-goog-api-key (never in the URL)."""
        return {"x-goog-api-key": self._api_key or "", "Content-Type": "application/json"}

    def _body(self, prompt: str, model: str, schema: dict[str, Any] | None) -> dict[str, Any]:
        """One user turn; JSON output, with a response schema when given."""
        config: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            config["responseSchema"] = schema
        return {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": config,
        }

    def _extract(self, data: Any) -> Extracted:
        """candidates[0].content.parts[*].text joined (thought parts skipped), and usage."""
        data = data if isinstance(data, dict) else {}
        meta = data.get("usageMetadata")
        usage, missing = usage_from_gemini(meta), gemini_usage_missing(meta)
        candidates = data.get("candidates") or []
        if not candidates or not isinstance(candidates[0], dict):
            feedback = data.get("promptFeedback") or {}
            block = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if block:
                return Extracted(None, usage, missing, f"prompt blocked: {block}", retryable=False)
            return Extracted(None, usage, missing, "no candidates")
        candidate = candidates[0]
        content = candidate.get("content") or {}
        parts = (content.get("parts") or []) if isinstance(content, dict) else []
        text = "".join(
            part.get("text") or ""
            for part in parts
            if isinstance(part, dict) and not part.get("thought")
        )
        finish = str(candidate.get("finishReason") or "")
        note = None if finish in _GOOD_FINISH else f"finishReason {finish}"
        return Extracted(text, usage, missing, note)

    def _error(self, response: httpx.Response) -> ProviderError:
        """{"error": {"code", "message", "status", "details"}} as a ProviderError."""
        code = response.status_code
        error, message = error_body(response)
        reasons = [
            str(detail["reason"])
            for detail in error.get("details") or []
            if isinstance(detail, dict) and detail.get("reason")
        ]
        auth = code in (401, 403) or any(reason in _AUTH_REASONS for reason in reasons)
        auth = auth or (code == 400 and "api key" in message.lower())
        return http_error(code, str(error.get("status") or ""), message, auth=auth)
