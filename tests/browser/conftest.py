"""Browser tests: Debian's Chromium driven by Playwright's sync API.

As on the real web, the partner's page and the widget live on two sites: partner pages come from
a tiny HTTP server on `http://127.0.0.1:A`, the widget from a live `petition-widget serve`
addressed as `http://localhost:B`. Without Chromium or Playwright these tests skip with the
reason (and fail in CI, where PETITION_WIDGET_REQUIRE_ALL=1).

Playwright's sync API keeps an event loop running while it is started, so everything that needs
`asyncio.run` (preparing the database) happens before the browser starts, and the browser is
closed with the module.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import backends, live

# From /work/shared/STACK.md: Debian's build, headless, nothing that calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if not path:
        backends.unavailable(
            "Chromium is not installed (apt-get install chromium): no browser tests"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        backends.unavailable(
            "Playwright is not installed (pip install playwright): no browser tests"
        )
    assert path is not None
    return path


EXAMPLE_SLUG = "save-russian-lgbt-network"
# A partner of the example petition, (code, name): a name long enough to wrap its box.
REGISTERED = ("network-friends", "Friends of the Network, Moscow and Saint Petersburg")


@pytest.fixture(scope="module")
def widget_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """The widget's server on SQLite, with the example petition and one registered partner
    (`REGISTERED`: its snippets add the partner's consent box), seen as http://localhost:B."""
    folder = tmp_path_factory.mktemp("browser")
    url = backends.sqlite_url(folder)
    live.prepare(url, partners=[(EXAMPLE_SLUG, *REGISTERED)])
    with live.LiveServer(url, folder) as running:
        yield running


class PartnerSite:
    """Pages of made-up partner sites, served from 127.0.0.1 on a port of their own."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def partner_site() -> Iterator[PartnerSite]:
    site = PartnerSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def chromium(chromium_path: str, widget_server: live.LiveServer) -> Iterator[Any]:
    """Chromium, launched once per module (not named `browser`, which pytest-playwright, when
    installed, would parametrize)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
    finally:
        playwright.stop()
