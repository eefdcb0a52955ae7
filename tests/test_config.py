"""Settings: typed, validated at start-up, secrets hidden, documented in README and .env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import REPO
from virtuna.config import Settings, SettingsError, load_settings, settings_table

VARIABLES = {name.upper() for name in Settings.model_fields}


def test_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.virtuna_env == "development"
    assert settings.apify_actor_id == "clockworks~tiktok-scraper"
    assert settings.gemini_api_key is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VIRTUNA_ENV", "prod", "'development' or 'production'"),
        ("SENTRY_TRACES_SAMPLE_RATE", "2", "less than or equal to 1"),
        ("VIRTUNA_DB_LOCK_TIMEOUT_S", "soon", "valid number"),
        ("PUBLIC_BASE_URL", "example.com", "http:// or https://"),
    ],
)
def test_a_bad_value_stops_with_a_message_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert expected in message
    assert "\n" not in message


def test_secrets_stay_out_of_reprs_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sk-very-secret-1234")
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "oops")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "sk-very-secret-1234" not in str(info.value)
    monkeypatch.delenv("SENTRY_TRACES_SAMPLE_RATE")
    settings = load_settings()
    assert "sk-very-secret-1234" not in repr(settings)
    assert "sk-very-secret-1234" not in str(settings.model_dump())
    assert settings.secret_values() == ["sk-very-secret-1234"]


def test_every_secret_looking_setting_is_a_secret() -> None:
    for name, field in Settings.model_fields.items():
        if re.search(r"(key|token|secret|dsn)$", name):
            assert field.annotation == SecretStr | None, name


def test_scraper_hashtags_are_cleaned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRAPER_HASHTAGS", " #Cooking, fyp,,COOKING , #")
    assert load_settings().hashtag_list() == ["cooking", "fyp"]


def test_readme_settings_table_matches_the_model() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate it with `virtuna settings --markdown`"
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    assert documented == VARIABLES


def test_env_example_lists_every_variable() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, flags=re.M))
    assert names == VARIABLES


def test_a_relative_store_path_is_taken_from_the_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from virtuna.constants import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)  # as Jupyter and nbval start kernels in notebooks/
    monkeypatch.setenv("VIRTUNA_DB_PATH", "data/virtuna.duckdb")
    assert load_settings().virtuna_db_path == PROJECT_ROOT / "data" / "virtuna.duckdb"
    monkeypatch.setenv("VIRTUNA_DB_PATH", str(tmp_path / "own.duckdb"))
    assert load_settings().virtuna_db_path == tmp_path / "own.duckdb"


def test_provider_orders_are_cleaned_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.provider_order("content") == ["gemini", "anthropic", "openai", "deepseek"]
    assert settings.provider_order("reasoning") == ["deepseek", "gemini", "anthropic", "openai"]
    monkeypatch.setenv("LLM_RULES_ORDER", " OpenAI , anthropic,")
    assert load_settings().provider_order("rules") == ["openai", "anthropic"]
    for bad, expected in (
        ("gemini,claude", "unknown provider 'claude'"),
        ("openai,openai", "at most once"),
        (",", "at most once"),
    ):
        monkeypatch.setenv("LLM_RULES_ORDER", bad)
        with pytest.raises(SettingsError, match=f"LLM_RULES_ORDER: .*{expected}"):
            load_settings()
