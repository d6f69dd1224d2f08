"""The proof-of-work challenge in Chromium: on a petition whose file says `challenge = "on"` the
widget fetches its solver (and only then), solves the puzzle in a Web Worker and signs; where
the challenge is off, the solver is never fetched. The partner page is on http://127.0.0.1:A,
the widget on http://localhost:B, as on the real web."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import PartnerSite
from tests.support import backends, live, petitions

pytestmark = pytest.mark.browser

ON, OFF = "challenge-on", "challenge-off"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def widget_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("challenge")
    url = backends.sqlite_url(folder)
    live.prepare(
        url,
        [
            dataclasses.replace(petitions.example(challenge="on"), slug=ON),
            dataclasses.replace(petitions.example(challenge="off"), slug=OFF),
        ],
    )
    with live.LiveServer(url, folder) as running:
        yield running


def page_with(base: str, slug: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" '
        f'href="data:,"><title>Partner</title></head><body><script async src="{base}/embed.js" '
        f'data-petition="{slug}"></script></body></html>'
    )


def sign_in_widget(
    chromium: Any, site: PartnerSite, server: live.LiveServer, slug: str
) -> tuple[list[str], list[str]]:
    """Sign in the widget of `slug`; the URLs it requested and any console problems."""
    base = f"http://localhost:{server.port}"
    site.pages[f"/{slug}.html"] = page_with(base, slug)
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    problems: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    try:
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(site.url(f"/{slug}.html"))
        frame = page.locator("iframe.petition-widget").element_handle().content_frame()
        frame.wait_for_selector("#pw-form")
        person = live.new_signer()
        frame.fill("#pw-name", person["name"])
        frame.fill("#pw-email", person["email"])
        frame.click(".pw-submit")
        frame.wait_for_selector("#pw-thanks-h", state="visible")
    finally:
        context.close()
    return requests, problems


def count(server: live.LiveServer, slug: str) -> int:
    value: int = httpx.get(server.url(f"/api/petitions/{slug}")).json()["signatures"]
    return value


def test_the_widget_solves_the_challenge_and_signs(
    chromium: Any, partner_site: PartnerSite, widget_server: live.LiveServer
) -> None:
    before = count(widget_server, ON)
    requests, problems = sign_in_widget(chromium, partner_site, widget_server, ON)
    assert not problems, problems
    assert count(widget_server, ON) == before + 1
    solver = [u for u in requests if u.endswith("/widget/assets/challenge.js")]
    assert len(solver) == 1, requests  # fetched once, by the worker
    assert any(f"/api/petitions/{ON}/token" in u for u in requests)  # a token with its puzzle
    origins = {u.split("/")[2] for u in requests if u.startswith("http")}
    assert origins <= {f"127.0.0.1:{partner_site.port}", f"localhost:{widget_server.port}"}


def test_no_solver_is_loaded_while_the_challenge_is_off(
    chromium: Any, partner_site: PartnerSite, widget_server: live.LiveServer
) -> None:
    before = count(widget_server, OFF)
    requests, problems = sign_in_widget(chromium, partner_site, widget_server, OFF)
    assert not problems, problems
    assert count(widget_server, OFF) == before + 1
    assert not [u for u in requests if "/challenge." in u], requests
