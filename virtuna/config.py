"""Settings: one typed model read from the environment and an optional `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from virtuna.constants import PROJECT_ROOT

LLM_PROVIDERS = ("gemini", "deepseek", "anthropic", "openai")


class SettingsError(ValueError):
    """A setting has a value the program cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Every environment variable Virtuna reads. Field descriptions feed the README table."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    virtuna_env: Literal["development", "production"] = Field(
        "development",
        description="development: coloured console logs; production: one JSON object per line.",
        json_schema_extra={"feature": "logging"},
    )
    virtuna_db_path: Path = Field(
        Path("data/virtuna.duckdb"),
        description="DuckDB store file; a relative path is taken from the project root, so "
        "notebooks, nbval and the CLI use one store whatever their working directory.",
        json_schema_extra={"feature": "store"},
    )
    virtuna_db_lock_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long to wait for another process's write lock on the store, seconds.",
        json_schema_extra={"feature": "store"},
    )
    virtuna_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="Lowest level written to the log.",
        json_schema_extra={"feature": "logging"},
    )
    sentry_dsn: SecretStr | None = Field(
        None,
        description="Sentry DSN; errors and stage breadcrumbs are sent there when set.",
        json_schema_extra={"feature": "observability"},
    )
    sentry_traces_sample_rate: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of transactions traced by Sentry, 0 to 1.",
        json_schema_extra={"feature": "observability"},
    )
    apify_token: SecretStr | None = Field(
        None,
        description="Apify API token (Bearer) for trend and creator-profile scrapes.",
        json_schema_extra={"feature": "scrape-trending, creator profiles"},
    )
    apify_webhook_secret: SecretStr | None = Field(
        None,
        description="Shared secret Apify sends back in a header on run webhooks.",
        json_schema_extra={"feature": "Apify webhook"},
    )
    apify_actor_id: str = Field(
        "clockworks~tiktok-scraper",
        min_length=1,
        description="Apify actor that scrapes TikTok hashtags.",
        json_schema_extra={"feature": "scrape-trending"},
    )
    scraper_hashtags: str = Field(
        "",
        description="Comma-separated hashtags to scrape; empty means the 14 defaults.",
        json_schema_extra={"feature": "scrape-trending"},
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of this service; Apify webhooks are sent to it.",
        json_schema_extra={"feature": "Apify webhook"},
    )
    gemini_api_key: SecretStr | None = Field(
        None,
        description="Google Gemini API key; without it Gemini is skipped in every fallback order.",
        json_schema_extra={"feature": "prediction (content factors)"},
    )
    gemini_model: str = Field(
        "gemini-2.5-flash",
        min_length=1,
        description="Gemini model for every role it serves (first for the content factors).",
        json_schema_extra={"feature": "prediction (content factors)"},
    )
    deepseek_api_key: SecretStr | None = Field(
        None,
        description="DeepSeek API key; without it DeepSeek is skipped in every fallback order.",
        json_schema_extra={"feature": "prediction (behavioural), semantic rules"},
    )
    deepseek_model: str = Field(
        "deepseek-reasoner",
        min_length=1,
        description="DeepSeek model for behavioural reasoning.",
        json_schema_extra={"feature": "prediction (behavioural)"},
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com",
        description="Gemini REST endpoint (tests point it at a local fake).",
        json_schema_extra={"feature": "prediction (content factors)"},
    )
    gemini_timeout_s: float = Field(
        15.0,
        gt=0,
        description="Timeout of one Gemini request, seconds.",
        json_schema_extra={"feature": "prediction (content factors)"},
    )
    deepseek_base_url: str = Field(
        "https://api.deepseek.com",
        description="DeepSeek REST endpoint (tests point it at a local fake).",
        json_schema_extra={"feature": "prediction (behavioural), semantic rules"},
    )
    deepseek_timeout_s: float = Field(
        90.0,
        gt=0,
        description="Timeout of one DeepSeek request, seconds.",
        json_schema_extra={"feature": "prediction (behavioural)"},
    )
    deepseek_rules_model: str = Field(
        "deepseek-chat",
        min_length=1,
        description="DeepSeek model that scores the semantic rules in one batched call.",
        json_schema_extra={"feature": "semantic rules"},
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        description="Anthropic API key; without it Claude is skipped in every fallback order.",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    anthropic_model: str = Field(
        "claude-haiku-5-5",
        min_length=1,
        description="Claude model for every role it serves (Messages API, structured outputs).",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    anthropic_base_url: str = Field(
        "https://api.anthropic.com",
        description="Anthropic REST endpoint (tests point it at a local fake).",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    anthropic_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Timeout of one Anthropic request, seconds.",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="OpenAI API key; without it OpenAI is skipped in every fallback order.",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    openai_model: str = Field(
        "gpt-6-luna",
        min_length=1,
        description="OpenAI model for every role it serves (Chat Completions, strict JSON schema).",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    openai_base_url: str = Field(
        "https://api.openai.com",
        description="OpenAI REST endpoint (tests point it at a local fake).",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    openai_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Timeout of one OpenAI request, seconds.",
        json_schema_extra={"feature": "prediction (fallback provider)"},
    )
    llm_content_order: str = Field(
        "gemini,anthropic,openai,deepseek",
        description="Providers tried in turn for the content factors; the first to answer wins.",
        json_schema_extra={"feature": "prediction (content factors)"},
    )
    llm_reasoning_order: str = Field(
        "deepseek,gemini,anthropic,openai",
        description="Providers tried in turn for the behavioural reasoning.",
        json_schema_extra={"feature": "prediction (behavioural)"},
    )
    llm_rules_order: str = Field(
        "deepseek,gemini,anthropic,openai",
        description="Providers tried in turn for the batched semantic-rule scores.",
        json_schema_extra={"feature": "semantic rules"},
    )
    llm_max_retries: int = Field(
        2,
        ge=0,
        le=5,
        description="Retries of an LLM request after a failure or an invalid reply.",
        json_schema_extra={"feature": "prediction"},
    )
    breaker_failure_threshold: int = Field(
        3,
        ge=1,
        description="Consecutive failed requests that open a provider's circuit breaker.",
        json_schema_extra={"feature": "prediction"},
    )
    breaker_backoff_s: str = Field(
        "1,3,9",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Seconds an open breaker waits before its probe, per consecutive opening.",
        json_schema_extra={"feature": "prediction"},
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for admin and job routes of the HTTP service.",
        json_schema_extra={"feature": "service admin routes"},
    )
    service_max_body_bytes: int = Field(
        65_536,
        ge=1_024,
        le=16_777_216,
        description="Largest request body the HTTP service reads, bytes (larger ones get 413).",
        json_schema_extra={"feature": "service"},
    )
    profile_scrapes_per_day: int = Field(
        3,
        ge=0,
        le=1_000,
        description="Paid profile scrapes one user may start per UTC day (PATCH /api/profile).",
        json_schema_extra={"feature": "service profile route"},
    )
    whop_api_key: SecretStr | None = Field(
        None,
        description="Whop API key for syncing memberships to user tiers.",
        json_schema_extra={"feature": "sync-whop"},
    )

    whop_product_id_starter: str | None = Field(
        None,
        description="Whop product id of the starter tier (50 analyses a day).",
        json_schema_extra={"feature": "sync-whop"},
    )
    whop_product_id_pro: str | None = Field(
        None,
        description="Whop product id of the pro tier (unlimited analyses).",
        json_schema_extra={"feature": "sync-whop"},
    )

    @field_validator("virtuna_db_path")
    @classmethod
    def _from_project_root(cls, path: Path) -> Path:
        # Jupyter and nbval start kernels in notebooks/: a cwd-relative default would make
        # them read (and create) a second, empty store there.
        return path if path.is_absolute() or str(path) == ":memory:" else PROJECT_ROOT / path

    @field_validator(
        "public_base_url",
        "gemini_base_url",
        "deepseek_base_url",
        "anthropic_base_url",
        "openai_base_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("llm_content_order", "llm_reasoning_order", "llm_rules_order")
    @classmethod
    def _provider_order(cls, value: str) -> str:
        names = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [name for name in names if name not in LLM_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r}; expected some of {LLM_PROVIDERS}")
        if not names or len(set(names)) != len(names):
            raise ValueError("expected a comma-separated list naming each provider at most once")
        return ",".join(names)

    def hashtag_list(self) -> list[str]:
        """SCRAPER_HASHTAGS as clean names: trimmed, lowercased, '#' stripped, de-duplicated."""
        seen: dict[str, None] = {}
        for part in self.scraper_hashtags.split(","):
            name = part.strip().lstrip("#").strip().lower()
            if name:
                seen.setdefault(name, None)
        return list(seen)

    def provider_order(self, role: Literal["content", "reasoning", "rules"]) -> list[str]:
        """The providers tried for role, in order (LLM_CONTENT_ORDER and its siblings)."""
        return getattr(self, f"llm_{role}_order").split(",")

    def breaker_backoff(self) -> list[float]:
        """BREAKER_BACKOFF_S as seconds, in order."""
        return [float(part) for part in self.breaker_backoff_s.split(",")]

    def secret_values(self) -> list[str]:
        """The plain values of every secret setting that is set (for log and event scrubbing)."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad value raises SettingsError naming the variable and its needs."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            problems.append(f"{variable}: {error['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


def settings_table() -> str:
    """The README's Markdown table of every variable: name, default, meaning, feature."""
    lines = ["| variable | default | meaning | needed by |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default in (None, "") else f"`{field.default}`"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        feature = extra.get("feature", "")
        lines.append(f"| `{name.upper()}` | {default} | {field.description} | {feature} |")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
