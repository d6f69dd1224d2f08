"""A partner page with a strict Content-Security-Policy: with the line docs/partners.md gives,
the widget works; without `frame-src` for the widget's origin, where Chromium would show a
blank grey box, the loader puts a plain link to the widget in its place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import PartnerSite
from tests.support import live

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
PARTNERS_MD = Path(__file__).resolve().parents[2] / "docs" / "partners.md"
EXAMPLE_SERVER = "https://petitions.example.org"


def documented_line() -> str:
    """The policy docs/partners.md gives partners to copy, without its header name."""
    found = re.search(r"^Content-Security-Policy: (.+)$", PARTNERS_MD.read_text(), re.MULTILINE)
    assert found is not None, "docs/partners.md lost its CSP line"
    return found.group(1)


def page(base: str, csp: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<link rel="icon" href="data:,"><title>Strict partner</title></head><body>'
        f'<script async src="{base}/embed.js" data-petition="{SLUG}" data-partner="strict">'
        "</script></body></html>"
    )


def open_page(chromium: Any, site: PartnerSite, path: str) -> tuple[Any, Any]:
    context = chromium.new_context()
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.goto(site.url(path))
    return context, tab


def test_the_documented_csp_line_lets_the_widget_in(
    chromium: Any, partner_site: PartnerSite, widget_server: live.LiveServer
) -> None:
    base = f"http://localhost:{widget_server.port}"
    # The line of docs/partners.md, with this server for its example one, under a default-src.
    line = "default-src 'self'; " + documented_line().replace(EXAMPLE_SERVER, base)
    partner_site.pages["/strict-ok.html"] = page(base, line)
    context, tab = open_page(chromium, partner_site, "/strict-ok.html")
    try:
        frame = tab.locator("iframe.petition-widget").element_handle().content_frame()
        frame.wait_for_selector("#pw-form")
        assert tab.locator("a.petition-widget-link").count() == 0
    finally:
        context.close()


def test_a_blocked_frame_becomes_a_link_to_the_widget(
    chromium: Any, partner_site: PartnerSite, widget_server: live.LiveServer
) -> None:
    base = f"http://localhost:{widget_server.port}"
    partner_site.pages["/strict.html"] = page(base, f"script-src 'self' {base}; frame-src 'none'")
    context, tab = open_page(chromium, partner_site, "/strict.html")
    try:
        link = tab.locator("a.petition-widget-link")
        link.wait_for()
        assert link.get_attribute("href") == f"{base}/widget/{SLUG}?partner=strict"
        assert link.get_attribute("target") == "_blank"
        assert tab.locator("iframe.petition-widget").count() == 0
    finally:
        context.close()
