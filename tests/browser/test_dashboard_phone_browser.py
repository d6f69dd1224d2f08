"""The dashboard on a phone and the widget's 404, in Chromium: charts that keep a readable size
and start at their newest end at 375 px, dates on the hourly axis, the snippet generator's
preview sized to the widget it shows, and a mistyped slug that leaves a small frame with one
readable line, passing axe-core (bundled in the axe-playwright-python test dependency)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.domain import access_keys
from server.store.storage import Storage
from tests.browser.conftest import ARTIFACTS, PartnerSite
from tests.support import backends, live

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
ADMIN = f"/admin/petitions/{SLUG}"
PHONE = 375
TIMEOUT_MS = 15_000
KEYS: dict[str, access_keys.Key] = {}


@pytest.fixture(scope="module")
def widget_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """The example petition with a partner, an owner key and a few signatures."""
    folder = tmp_path_factory.mktemp("dashboard-phone")
    url = backends.sqlite_url(folder)
    live.prepare(url)

    async def arrange() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            await storage.add_partner(pid, "ngo-a", "NGO A")
            key = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(key.id, access_keys.OWNER, key.digest, "t")
            KEYS["owner"] = key
        finally:
            await storage.disconnect()

    asyncio.run(arrange())
    with live.LiveServer(url, folder) as running:
        for partner in ("ngo-a", "ngo-a", ""):
            token = httpx.get(running.url(f"/api/petitions/{SLUG}/token?partner={partner}"))
            body = {"token": token.json()["token"], **live.new_signer()}
            signed = httpx.post(running.url(f"/api/petitions/{SLUG}/signatures"), json=body)
            assert signed.status_code == 201
        yield running


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Any]:
    contexts: list[Any] = []
    problems: list[str] = []

    def new(width: int, **options: Any) -> Any:
        context = chromium.new_context(viewport={"width": width, "height": 800}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        return page

    yield new
    for context in contexts:
        context.close()
    assert not problems, problems


def signed_in(page: Any, server: live.LiveServer) -> None:
    live.sign_in_from_link(page, server, KEYS["owner"].text)
    page.goto(server.url(ADMIN))


# Where each chart's newest bar or point is, against its scrolling frame, and how big the
# axis labels are drawn (12 units in a 640-unit-wide drawing).
CHARTS_JS = """() => [...document.querySelectorAll('.chart')].map(figure => {
  const frame = figure.querySelector('.chart-frame');
  const svg = frame.querySelector('svg');
  const marks = svg.querySelectorAll('rect.chart-bar, circle.chart-point, polyline');
  const last = marks[marks.length - 1].getBoundingClientRect();
  const box = frame.getBoundingClientRect();
  return {id: figure.id, frameLeft: box.left, frameRight: box.right, lastRight: last.right,
          scrolls: frame.scrollWidth > frame.clientWidth,
          labelPx: 12 * svg.getBoundingClientRect().width / 640,
          axis: [...svg.querySelectorAll('text.chart-axis')].map(t => t.textContent)};
})"""


def test_charts_on_a_phone_are_readable_and_start_at_the_newest_day(
    open_page: Any, widget_server: live.LiveServer
) -> None:
    page = open_page(PHONE, is_mobile=True)
    signed_in(page, widget_server)
    charts = page.evaluate(CHARTS_JS)
    assert {c["id"] for c in charts} >= {"cumulative", "per-day", "per-hour", "partners-over-time"}
    for chart in charts:
        assert chart["labelPx"] >= 11, chart  # not squeezed to an unreadable size
        # The newest data is in view: the frame starts at its end.
        assert chart["frameLeft"] <= chart["lastRight"] <= chart["frameRight"] + 1, chart
    assert any(c["scrolls"] for c in charts)  # the frames do scroll at this width
    hourly = next(c for c in charts if c["id"] == "per-hour")
    today = datetime.datetime.now(datetime.UTC).date()
    assert f"{today:%b} {today.day}" in hourly["axis"]  # dates on the hourly axis
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-charts-375.png"), full_page=True)


def test_the_preview_frame_takes_the_height_of_the_widget_it_shows(
    open_page: Any, widget_server: live.LiveServer
) -> None:
    page = open_page(1280)
    signed_in(page, widget_server)
    page.locator("#preview").scroll_into_view_if_needed()  # a lazy frame loads when near
    page.frame_locator("#preview").locator("#pw-form").wait_for()
    page.wait_for_function(
        """() => { const f = document.getElementById('preview');
          const doc = f.contentDocument && f.contentDocument.documentElement;
          const height = doc && Math.ceil(doc.getBoundingClientRect().height);
          return doc && Math.abs(f.clientHeight - height) <= 1; }"""
    )
    inner = page.evaluate(
        "document.getElementById('preview').contentDocument.documentElement.scrollHeight"
    )
    assert inner > 900  # the widget is taller than the frame's old fixed height
    shown = page.evaluate("document.getElementById('preview').clientHeight")
    assert shown >= inner - 1


def test_a_mistyped_slug_leaves_a_small_readable_frame_that_passes_axe(
    open_page: Any, widget_server: live.LiveServer, partner_site: PartnerSite
) -> None:
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    base = f"http://localhost:{widget_server.port}"
    partner_site.pages["/typo.html"] = (
        '<!doctype html><html lang="en"><title>Host</title><main><h1>Host</h1>'
        f'<script async src="{base}/embed.js" data-petition="no-such-petiton"></script>'
        "<p>After the widget.</p></main></html>"
    )
    page = open_page(PHONE)
    page.goto(partner_site.url("/typo.html"))
    frame = page.locator("iframe.petition-widget")
    page.wait_for_function(
        "() => { const f = document.querySelector('iframe.petition-widget');"
        " return f && parseFloat(f.style.height) < 300; }"
    )
    assert frame.bounding_box()["height"] < 300  # not a 640 px hole
    inside = page.frame_locator("iframe.petition-widget")
    assert inside.locator("h1").inner_text() == "There is no petition here."
    alone = open_page(PHONE)
    answer = alone.goto(f"{base}/widget/no-such-petiton")
    assert answer is not None and answer.status == 404
    results = Axe().run(alone)
    violations = [v["id"] for v in results.response["violations"]]
    assert violations == [], results.generate_report()
    assert alone.evaluate("document.documentElement.getBoundingClientRect().height") < 200
