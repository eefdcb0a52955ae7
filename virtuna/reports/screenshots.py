"""Screenshots of every HTML report, the index and the service's /docs in headless Chromium.

`make screenshots` (`python -m virtuna.reports.screenshots`) checks in a real browser that the
reports and the API docs render offline: the browser may resolve no host but 127.0.0.1, so a
page that needs a CDN shows it. The PNGs go to reports/screenshots/ (one per report, named after
its job and run). Chromium is looked up on PATH (Debian's `chromium`); without it nothing is
taken and the command says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from virtuna.constants import REPORTS_DIR
from virtuna.log import configure_logging, get_logger

log = get_logger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 2400)  # width, height in CSS pixels: a long page is cut at the height
TIMEOUT_S = 120
DOCS_PAGES = ("docs", "redoc")


class BrowserMissing(RuntimeError):
    """No headless Chromium on PATH."""


def find_browser() -> str | None:
    """The first Chromium on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def report_pages(reports_dir: Path) -> list[tuple[Path, str]]:
    """Every report's HTML and the index, each with the PNG name it is saved under."""
    pages = [
        (html, f"{html.parent.parent.name}/{html.parent.name}")
        for html in sorted(reports_dir.glob("*/*/*.html"))
    ]
    index = reports_dir / "index.html"
    return pages + ([(index, "index")] if index.is_file() else [])


def screenshot(browser: str, url: str, target: Path) -> Path:
    """One page as a PNG: headless, offline but for 127.0.0.1, a window of WINDOW."""
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={target}",
        url,
    ]
    if os.geteuid() == 0:  # Chromium refuses to run its sandbox as root
        command.insert(1, "--no-sandbox")
    subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT_S)
    return target


@contextlib.contextmanager
def _service() -> Iterator[str]:
    """The HTTP service on a free 127.0.0.1 port, on an empty temporary store."""
    import uvicorn

    from virtuna.service import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(db_path=Path(folder) / "docs.duckdb")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join()


def take_screenshots(reports_dir: Path, out_dir: Path, browser: str | None = None) -> list[Path]:
    """Screenshots of every report under reports_dir and of /docs and /redoc, into out_dir."""
    browser = browser or find_browser()
    if browser is None:
        raise BrowserMissing(
            f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)}); "
            "install Debian's `chromium` to take screenshots"
        )
    taken = [
        screenshot(browser, html.resolve().as_uri(), out_dir / f"{name}.png")
        for html, name in report_pages(reports_dir)
    ]
    with _service() as base:
        taken += [
            screenshot(browser, f"{base}/{page}", out_dir / f"{page}.png") for page in DOCS_PAGES
        ]
    return taken


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots; without Chromium, say so and take none (exit 0)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports-dir", type=Path, default=REPORTS_DIR, help="reports to shoot")
    parser.add_argument("--out", type=Path, default=None, help="default: REPORTS/screenshots")
    args = parser.parse_args(argv)
    configure_logging()
    out = args.out or args.reports_dir / "screenshots"
    try:
        taken = take_screenshots(args.reports_dir, out)
    except BrowserMissing as exc:
        log.warning("screenshots skipped", reason=str(exc))
        return 0
    log.info("screenshots saved", count=len(taken), folder=str(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
