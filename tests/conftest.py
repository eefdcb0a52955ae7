"""Shared fixtures: an isolated environment, temporary stores and row factories."""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process for the whole session, set before numpy or scikit-learn
# load (subprocesses and notebook kernels inherit it): on a shared 2-core machine more threads
# oversubscribe the cores, and a model fit once stalled for 30 minutes that way.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import json  # noqa: E402
import re  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import datetime  # noqa: E402
from html.parser import HTMLParser  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from virtuna.config import get_settings  # noqa: E402
from virtuna.store import connect  # noqa: E402

# Libraries a plugin loaded before this file still get the cap.
threadpool_limits(1)

REPO = Path(__file__).resolve().parent.parent
RAW = REPO / "data" / "raw"
# Just after the newest post of tiktok_trending_2025.csv (the bundled data runs on to June 2025).
END_OF_TRENDING_2025 = datetime(2025, 5, 24, 21, 52, 45)
SETTINGS_PREFIXES = ("VIRTUNA_", "SENTRY_", "APIFY_", "GEMINI_", "DEEPSEEK_", "WHOP_")


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's environment; the default store is a temporary file."""
    import os

    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIXES) or name in ("ADMIN_TOKEN", "SCRAPER_HASHTAGS"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIRTUNA_DB_PATH", str(tmp_path / "default.duckdb"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh, migrated store file."""
    path = tmp_path / "store.duckdb"
    with connect(path):
        pass
    return path


@pytest.fixture(scope="session")
def bundled_ingest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """All of the bundled real data ingested once into a fresh store, in data_files order:
    the store and each file's IngestReport by source_ref (copy the store before writing)."""
    from virtuna.ingest import data_files, ingest_file

    path = tmp_path_factory.mktemp("bundled") / "bundled.duckdb"
    reports = {
        ref: ingest_file(file, db_path=path, source_ref=ref) for file, ref in data_files(RAW)
    }
    return path, reports


@pytest.fixture(scope="session")
def bundled_store(bundled_ingest: tuple[Path, dict[str, Any]]) -> Path:
    """A store holding all of the bundled real data (built once; copy it before writing)."""
    return bundled_ingest[0]


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store of real data: the Apify sample and the December 2020 trending feed (built
    once; copy it before writing)."""
    from virtuna.ingest import ingest_file

    path = tmp_path_factory.mktemp("small") / "small.duckdb"
    for name in ("tiktok_apify_2023_sample.jsonl", "tiktok_trending_dec2020.json"):
        ingest_file(RAW / name, db_path=path)
    return path


@pytest.fixture
def bundled_copy(bundled_store: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the bundled real-data store."""
    import shutil

    target = tmp_path / "bundled.duckdb"
    shutil.copy(bundled_store, target)
    return target


def make_item(**overrides: Any) -> dict[str, Any]:
    """An Apify clockworks TikTok item in the scraper's real layout."""
    item: dict[str, Any] = {
        "id": "7300000000000000001",
        "text": "Wait for it... #Cooking #fyp",
        "createTime": 1700000000,
        "createTimeISO": "2023-11-14T22:13:20.000Z",
        "authorMeta": {
            "id": "6800000000000000001",
            "name": "chef_ana",
            "nickName": "Ana",
            "verified": False,
            "fans": 12000,
            "heart": 340000,
            "video": 88,
        },
        "musicMeta": {
            "musicId": "7000000000000000001",
            "musicName": "original sound",
            "musicAuthor": "Ana",
            "musicOriginal": True,
        },
        "videoMeta": {"height": 1024, "width": 576, "duration": 21},
        "webVideoUrl": "https://www.tiktok.com/@chef_ana/video/7300000000000000001",
        "diggCount": 1500,
        "shareCount": 40,
        "playCount": 52000,
        "commentCount": 61,
        "collectCount": 230,
        "mentions": [],
    }
    item.update(overrides)
    return item


def item_line(**overrides: Any) -> str:
    """make_item as one JSON Lines line."""
    return json.dumps(make_item(**overrides))


# A URL that leaves the page's own host: http(s):, any other scheme with //, or protocol-relative.
_EXTERNAL_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"(?:url\(\s*|@import\s+(?!url\())[\"']?([^\"')\s]+)", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"(?:import|fetch)\(\s*[\"']([^\"']+)", re.IGNORECASE)
_URL_ATTRIBUTES = ("src", "href", "srcset", "data", "action", "poster", "spec-url")


class _References(HTMLParser):
    """Every URL a page loads or links: attributes, CSS url()/@import and script imports."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in _URL_ATTRIBUTES:
                self.urls += (
                    [part.split()[0] for part in value.split(",")] if name == "srcset" else [value]
                )
            elif value and name == "style":
                self.urls += _CSS_URL.findall(value)
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.urls += _CSS_URL.findall(data)
        elif self._in == "script":
            self.urls += _SCRIPT_URL.findall(data)


def page_references(html: str) -> list[str]:
    """The URLs an HTML page loads or links (data: URIs left out)."""
    parser = _References()
    parser.feed(html)
    return [u for u in parser.urls if not u.strip().lower().startswith("data:")]


def external_references(html: str) -> list[str]:
    """The URLs of an HTML page that point off its own host (http(s)://, //host)."""
    return [u for u in page_references(html) if _EXTERNAL_URL.match(u)]
