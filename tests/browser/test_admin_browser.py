"""The dashboard in Chromium: signing in from a demo link, the snippet generator's live preview,
closing a petition behind a confirmation, a phone-sized screen, and no Content-Security-Policy
violation or script error anywhere."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from server.domain import access_keys, i18n
from server.store.storage import Storage
from tests.browser.conftest import ARTIFACTS
from tests.support import live

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
ADMIN = f"/admin/petitions/{SLUG}"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Keys:
    owner: access_keys.Key
    partner: access_keys.Key


def in_thread(work: Callable[[], T]) -> T:
    """Run `asyncio.run` work off this thread: Playwright's sync API keeps a loop running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result(60)


@pytest.fixture(scope="module")
def admin_keys(widget_server: live.LiveServer) -> Keys:
    async def make() -> Keys:
        storage = Storage(widget_server.env["DATABASE_URL"])
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            partner = await storage.add_partner(pid, "ngo-a", "NGO A")
            made = Keys(
                access_keys.generate(access_keys.OWNER), access_keys.generate(access_keys.PARTNER)
            )
            await storage.add_access_key(made.owner.id, access_keys.OWNER, made.owner.digest, "t")
            await storage.add_access_key(
                made.partner.id, access_keys.PARTNER, made.partner.digest, "t",
                petition_id=pid, partner_id=partner.id,
            )  # fmt: skip
            return made
        finally:
            await storage.disconnect()

    return in_thread(lambda: asyncio.run(make()))


@pytest.fixture
def tab(chromium: Any, admin_keys: Keys) -> Iterator[Any]:
    """A page in a fresh browser context; fails the test on any console error or warning (CSP
    violations are reported there), uncaught script error or failed request. (Not named `page`,
    which pytest-playwright, when installed, would parametrize.)"""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        # A failed load is reported with its URL below, where the favicon can be told apart.
        if message.type in ("error", "warning") and "Failed to load resource" not in message.text:
            problems.append(message.text)

    def response(answer: Any) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            problems.append(f"{answer.status} {answer.url}")

    opened.on("console", console)
    opened.on("response", response)
    opened.on("pageerror", lambda error: problems.append(str(error)))

    def failed(request: Any) -> None:
        # Aborted: the preview frame was pointed elsewhere, or the page closed, mid-load.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"failed {request.url}: {request.failure}")

    opened.on("requestfailed", failed)
    yield opened
    context.close()
    assert not problems, problems


def sign_in_from_link(page: Any, server: live.LiveServer, key: access_keys.Key) -> None:
    live.sign_in_from_link(page, server, key.text)


def test_a_link_shows_the_keys_role_and_scope_and_signs_in_only_on_a_click(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    """Login CSRF: a link made by someone else (`/admin/login#key=...`) signed a visitor into
    that person's dashboard by itself. Now it only asks."""
    tab.goto(widget_server.url(f"/admin/login#key={admin_keys.partner.text}"))
    tab.locator("#login-confirm").wait_for()
    scope = tab.locator("#login-scope").text_content()
    assert "partner" in scope and "ngo-a" in scope and SLUG in scope
    assert admin_keys.partner.text not in tab.url  # gone from the address bar at once
    assert not [c for c in tab.context.cookies() if c["name"].endswith("session")]
    tab.wait_for_timeout(300)  # nothing else happens by itself
    assert "/admin/login" in tab.url
    tab.goto("about:blank")  # (else only the fragment would change: no new page)
    tab.goto(widget_server.url(f"/admin/login#key={admin_keys.owner.text}"))
    tab.locator("#login-confirm").wait_for()
    assert "every petition" in tab.locator("#login-scope").text_content()
    tab.get_by_role("button", name="Sign in with this key").click()
    tab.wait_for_url(widget_server.url("/admin"))


def test_a_demo_link_signs_the_owner_in(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    sign_in_from_link(tab, widget_server, admin_keys.owner)
    assert tab.url == widget_server.url("/admin")
    assert tab.get_by_role("link", name="The work of the Russian LGBT+ movement is at risk")
    tab.goto(widget_server.url(ADMIN))
    assert "Signatures per day (UTC)" in tab.locator("svg[role=img] title").all_text_contents()
    # The key went through a form post, never into the history as part of a URL.
    history = tab.evaluate("history.length")
    assert history >= 1 and admin_keys.owner.text not in tab.content()


def test_a_partner_link_opens_the_partner_view(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    sign_in_from_link(tab, widget_server, admin_keys.partner)
    assert tab.url == widget_server.url(f"{ADMIN}/partners/ngo-a")
    assert tab.get_by_role("heading", name="NGO A").is_visible()


def test_snippet_generator_updates_snippet_and_preview(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    sign_in_from_link(tab, widget_server, admin_keys.owner)
    tab.goto(widget_server.url(ADMIN))
    tab.select_option("select[name=partner]", "ngo-a")
    tab.select_option("select[name=lang]", "ru")
    tab.fill("input[name=accent]", "#c0392b")
    snippet = tab.locator("#snippet-text")
    expected = 'data-partner="ngo-a" data-lang="ru" data-accent="#c0392b"'
    tab.wait_for_function(
        "text => document.getElementById('snippet-text').value.includes(text)", arg=expected
    )
    assert widget_server.url("/embed.js") in snippet.input_value()
    frame = tab.locator("#preview")
    tab.wait_for_function(
        "() => document.getElementById('preview').getAttribute('src').includes('lang=ru')"
    )
    assert frame.get_attribute("src") == (
        f"/widget/{SLUG}?partner=ngo-a&lang=ru&accent=%23c0392b&preview=1"
        f"&origin={urllib.parse.quote(widget_server.url(''), safe='')}&frame=preview"
    )  # still the preview, which cannot sign
    # The script builds the very snippet the server does for the same options.
    tab.check("input[name=layout]")
    tab.select_option("select[name=theme]", "dark")
    tab.wait_for_function(
        "() => document.getElementById('snippet-text').value.includes('data-layout=\"compact\"')"
    )
    built = snippet.input_value()
    tab.goto(
        widget_server.url(ADMIN)
        + "?partner=ngo-a&lang=ru&accent=%23c0392b&theme=dark&layout=compact"
    )
    assert tab.locator("#snippet-text").input_value() == built
    tab.locator("#preview").scroll_into_view_if_needed()  # a lazy frame loads once in view
    preview = tab.frame_locator("#preview")
    preview.locator("html[lang=ru]").wait_for()  # the real widget, in Russian


def test_no_preview_signs_once_options_change(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    """The preview signed for real once an option changed (admin.js built its address without
    preview=1): signing in it took a partner's count up. It must not, in any variant, and its
    hint says so."""
    sign_in_from_link(tab, widget_server, admin_keys.partner)
    before = httpx.get(widget_server.url(f"/api/petitions/{SLUG}")).json()["signatures"]
    assert "signing turned off" in tab.locator(".preview .hint").text_content()
    tab.fill("input[name=accent]", "#1f5fbf")
    tab.wait_for_function(
        "() => document.getElementById('preview').getAttribute('src').includes('accent=')"
    )
    frame = tab.frame_locator("#preview")
    frame.locator("#pw-preview").wait_for()  # the preview's own notice
    person = live.new_signer()
    frame.locator("#pw-name").fill(person["name"])
    frame.locator("#pw-email").fill(person["email"])
    frame.locator(".pw-submit").click(force=True)  # disabled: clicked all the same
    frame.locator("#pw-form").evaluate("form => form.requestSubmit()")
    tab.wait_for_timeout(500)
    assert frame.locator("#pw-thanks").is_hidden()
    after = httpx.get(widget_server.url(f"/api/petitions/{SLUG}")).json()["signatures"]
    assert after == before


def test_closing_asks_first_and_then_closes(
    tab: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    sign_in_from_link(tab, widget_server, admin_keys.owner)
    tab.goto(widget_server.url(ADMIN))
    close = tab.get_by_role("button", name="Close the petition")
    tab.once("dialog", lambda dialog: dialog.dismiss())
    close.click()
    assert tab.url == widget_server.url(ADMIN)  # dismissed: nothing sent
    tab.once("dialog", lambda dialog: dialog.accept())
    close.click()
    tab.wait_for_url("**done=closed**")
    assert tab.locator(".notice").text_content().startswith("The petition is closed")
    tab.get_by_role("button", name="Open the petition").click()
    tab.wait_for_url("**done=opened**")


def test_phone_screens_scroll_tables_not_the_page(
    chromium: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        phone = context.new_page()
        sign_in_from_link(phone, widget_server, admin_keys.owner)
        for path in (ADMIN, f"{ADMIN}/partners/ngo-a", "/admin"):
            phone.goto(widget_server.url(path))
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width}px wide"
    finally:
        context.close()


def test_a_russian_browser_gets_the_dashboard_in_russian(
    chromium: Any, widget_server: live.LiveServer, admin_keys: Keys
) -> None:
    """Chromium set to Russian (its Accept-Language follows) signs in to a Russian dashboard,
    with Russian dates and numbers in the charts."""
    ru = i18n.catalog("ru")
    context = chromium.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in_from_link(page, widget_server, admin_keys.owner)
        assert page.locator("h1").text_content() == ru.admin("petitions")
        page.goto(widget_server.url(ADMIN))
        assert page.evaluate("[document.documentElement.lang, document.title]")[0] == "ru"
        titles = page.locator("svg[role=img] title")
        assert ru.admin("chart_per_day", zone="UTC") in titles.all_text_contents()
        assert page.get_by_role("heading", name=ru.admin("manage_h")).is_visible()
        # The goal, as Russian groups digits (a no-break space).
        goal = httpx.get(widget_server.url(f"/api/petitions/{SLUG}")).json()["goal"]
        assert ru.admin("goal_line", goal=goal) in page.locator(".meta").text_content()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-ru-1280.png"), full_page=True)
    finally:
        context.close()
