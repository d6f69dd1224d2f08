"""Confirmation by email in Chromium, for a petition that counts a signature only once its
signer confirms it from a mail.

The partner page is on http://127.0.0.1:A and embeds the widget from http://localhost:B, as in
test_widget_browser.py. The server's mail server is a closed port, so every mail waits in the
outbox: the tests compose it from its row as the mail job would and follow the link in its text
part, which names the server as BASE_URL does (http://127.0.0.1:B). Every visit also checks
that the console stayed clean and that nothing was requested from any other origin.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from server.domain import i18n, mail
from server.store.storage import Storage
from server.web import widget
from tests.browser.conftest import ARTIFACTS, PartnerSite
from tests.support import backends, live, petitions

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
PETITION = petitions.example(confirmation="email")
MAIL_FROM = "p@example.org"
EN = i18n.catalog("en")
TIMEOUT_MS = 5_000  # the longest any single wait in the browser may take
# Chromium's report of a <style> its page's Content-Security-Policy refuses: an escaped
# stylesheet whose hash no longer matched left the link pages unstyled once.
STYLE_BLOCKED = "Applying inline style violates the following Content Security Policy"
T = TypeVar("T")


# --- The server, the partner page, the browser ---------------------------------------------------


@pytest.fixture(scope="module")
def widget_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """Overrides conftest's: the example petition confirms by email, and its mails wait in the
    outbox (SMTP_URL is a closed local port). Chromium starts after it (conftest's `chromium`
    asks for this fixture), so the database is prepared before Playwright holds the loop."""
    folder = tmp_path_factory.mktemp("browser-confirm")
    url = backends.sqlite_url(folder)
    live.prepare(url, [PETITION])
    server = live.LiveServer(
        url, folder, SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}", MAIL_FROM=MAIL_FROM
    )
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


@pytest.fixture(scope="module")
def widget_base(widget_server: live.LiveServer) -> str:
    """The widget's origin as partner pages name it: another site than theirs."""
    return f"http://localhost:{widget_server.port}"


@pytest.fixture(scope="module")
def pages(partner_site: PartnerSite, widget_base: str) -> PartnerSite:
    snippet = (
        f'<script async src="{widget_base}/embed.js" data-petition="{SLUG}" data-lang="en">'
        "</script>"
    )
    partner_site.pages["/confirming.html"] = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>Partner</title></head>'
        f'<body><p>A partner\'s page</p><div style="max-width:100%">{snippet}</div></body></html>'
    )
    return partner_site


@dataclasses.dataclass
class Tab:
    page: Any
    problems: list[str]  # console errors and warnings, script errors
    requests: list[tuple[str, str]]  # (method, url) of everything the context asked for
    polls: list[int]  # statuses of the widget's count polls
    refused: list[str] = dataclasses.field(default_factory=list)  # styles the CSP refused

    def frame(self) -> Any:
        """The document inside the partner page's widget, once its script has run."""
        handle = self.page.locator("iframe.petition-widget").first.element_handle()
        frame = handle.content_frame()
        frame.wait_for_selector("#pw-form", state="attached")
        return frame


@pytest.fixture
def open_tab(
    chromium: Any, pages: PartnerSite, widget_base: str, widget_server: live.LiveServer
) -> Iterator[Callable[..., Tab]]:
    """Opens a URL in a fresh browser context (its own cookies, as a mail client's browser would
    have); afterwards checks every visit was clean and stayed on our three origins."""
    contexts: list[Any] = []
    tabs: list[Tab] = []
    allowed = (
        pages.url("/"),
        widget_base + "/",
        widget_server.base_url + "/",
        "data:",
    )

    def open_url(
        url: str,
        width: int = 1000,
        height: int = 900,
        javascript: bool = True,
        clock: bool = False,
        expected_status: int | None = None,
    ) -> Tab:
        context = chromium.new_context(
            viewport={"width": width, "height": height}, java_script_enabled=javascript
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page, [], [], [])
        tabs.append(tab)

        def console(message: Any) -> None:
            if message.type not in ("error", "warning"):
                return
            if message.location.get("url", "").endswith("/favicon.ico"):
                return  # a page opened at the top level asks for one; there is none
            if STYLE_BLOCKED in message.text:
                tab.refused.append(message.location.get("url", ""))
            status = f"the server responded with a status of {expected_status} "
            if expected_status is not None and status in message.text:
                return  # the page under test answers so on purpose
            tab.problems.append(f"{message.type}: {message.text} ({message.location.get('url')})")

        def response(answer: Any) -> None:
            if answer.url.endswith("/count"):
                tab.polls.append(answer.status)

        page.on("console", console)
        page.on("pageerror", lambda e: tab.problems.append(f"script error: {e}"))
        context.on("request", lambda r: tab.requests.append((r.method, r.url)))
        context.on("response", response)
        if clock:
            page.clock.install()  # a poll interval passes when the test says so
        page.goto(url)
        return tab

    yield open_url
    for context in contexts:
        context.close()
    for tab in tabs:
        assert not tab.problems, tab.problems
        foreign = [url for _, url in tab.requests if not url.startswith(allowed)]
        assert not foreign, foreign


# --- Helpers -------------------------------------------------------------------------------------


def in_thread(work: Callable[[], T]) -> T:
    """Run `asyncio.run` work off this thread: Playwright's sync API keeps a loop running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result(30)


def mails_to(server: live.LiveServer, address: str) -> list[dict[str, Any]]:
    """The payloads of the outbox's mails to `address`, oldest first."""

    async def read() -> list[Any]:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            sql = "SELECT payload FROM outbox WHERE topic = 'mail' ORDER BY id"
            return [r[0] for r in await storage.database.fetch_all(sql)]
        finally:
            await storage.disconnect()

    found = [json.loads(p) for p in in_thread(lambda: asyncio.run(read()))]
    opened = [live.opened(m) for m in found]  # as the mail job opens them
    return [m for m in opened if m["to"].lower() == address.lower()]


def mailed_link(server: live.LiveServer, address: str, kind: str) -> str:
    """The `kind` link ("confirm" or "withdraw") in the text of the one mail to `address`,
    composed from its outbox row as the mail job composes it."""
    (payload,) = mails_to(server, address)
    assert payload["kind"] == mail.CONFIRM
    message = mail.compose(
        payload, PETITION, base_url=server.base_url, mail_from=MAIL_FROM, confirm_lifetime=86_400
    )
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = re.findall(rf"^({re.escape(server.base_url)}/{kind}/[A-Za-z0-9_-]+)$", text, re.M)
    assert len(found) == 1, text
    url: str = found[0]
    return url


def api_count(server: live.LiveServer) -> int:
    count: int = httpx.get(server.url(f"/api/petitions/{SLUG}"), timeout=5).json()["signatures"]
    return count


def shown_count(frame: Any) -> int:
    return int(frame.get_attribute(".pw-track", "aria-valuenow"))


def wait_until(frame: Any, expression: str) -> None:
    """Until `expression` is true in the frame (bounded). Playwright's wait_for_function uses
    eval(), which the widget's Content-Security-Policy rightly refuses; `evaluate` does not."""
    for _ in range(TIMEOUT_MS // 50):
        if frame.evaluate(expression):
            return
        frame.page.wait_for_timeout(50)
    raise AssertionError(f"never true in {frame.url}: {expression}")


def wait_fitted(frame: Any) -> None:
    """Until the frame is exactly as tall as its content (its height message has arrived)."""
    wait_until(
        frame,
        "() => Math.abs(innerHeight -"
        " Math.ceil(document.documentElement.getBoundingClientRect().height)) <= 1",
    )


def wait_for_polls(tab: Tab, n: int) -> None:
    """Until n answers to the widget's count polls have arrived (bounded)."""
    for _ in range(TIMEOUT_MS // 50):
        if len(tab.polls) >= n:
            return
        tab.page.wait_for_timeout(50)
    raise AssertionError(f"expected {n} polls, saw {tab.polls}")


POLL_MS = int(widget.POLL_SECONDS * 1000 * 1.25)  # the longest jittered wait between polls


def typed_address(person: dict[str, str]) -> str:
    """The signer's address as a person might type it: some capitals, a space at the end."""
    local, _, domain = person["email"].partition("@")
    return f"{local[:3].upper()}{local[3:]}@{domain.capitalize()} "


def sign_in_widget(tab: Tab, person: dict[str, str]) -> tuple[Any, int]:
    """Signs in the partner page's widget with JavaScript; returns its frame and the status of
    the answer to the submission."""
    frame = tab.frame()
    wait_fitted(frame)
    frame.fill("#pw-name", person["name"])
    frame.fill("#pw-email", typed_address(person))
    frame.check("#pw-c-org")

    def submission(r: Any) -> bool:
        return bool(r.request.method == "POST" and r.url.endswith(f"/{SLUG}/signatures"))

    with tab.page.context.expect_event("response", submission) as answer:
        frame.click(".pw-submit")
    frame.wait_for_selector("#pw-check-h", state="visible")
    status: int = answer.value.status
    return frame, status


# --- Signing -------------------------------------------------------------------------------------


def test_signing_with_javascript_asks_to_check_email(
    open_tab: Callable[..., Tab], pages: PartnerSite, widget_server: live.LiveServer
) -> None:
    tab = open_tab(pages.url("/confirming.html"), width=400, clock=True)
    frame = tab.frame()
    before = shown_count(frame)
    assert before == api_count(widget_server)
    person = live.new_signer()
    frame, status = sign_in_widget(tab, person)
    assert status == 202
    # The heading is focused (a screen reader reads the step out); the address is the one typed,
    # capitals and all (trimmed); the spam-folder hint follows; the form is gone.
    assert frame.evaluate("document.activeElement.id") == "pw-check-h"
    assert frame.inner_text("#pw-check-h") == EN("check_heading")
    typed = typed_address(person).strip()
    assert typed != person["email"]
    assert frame.inner_text(".pw-check-text") == EN("check_text", email=typed)
    assert frame.is_visible(f"#pw-check p:text-is({json.dumps(EN('check_spam'))})")
    assert frame.is_hidden("#pw-form")
    assert frame.is_hidden("#pw-thanks")
    # Nothing counts yet: not on the page, not on the server, not after the next poll.
    assert shown_count(frame) == before == api_count(widget_server)
    tab.page.clock.run_for(POLL_MS)
    wait_for_polls(tab, 1)
    assert tab.polls == [304]
    assert shown_count(frame) == before
    # One mail waits, to the address as typed (its domain may be lower-cased).
    assert [m["kind"] for m in mails_to(widget_server, person["email"])] == [mail.CONFIRM]
    wait_fitted(frame)  # the frame shrank to the check-your-email step
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.locator("iframe.petition-widget").screenshot(
        path=str(ARTIFACTS / "widget-check-email-400.png")
    )


def test_the_check_email_step_reads_top_to_bottom(
    open_tab: Callable[..., Tab], pages: PartnerSite
) -> None:
    tab = open_tab(pages.url("/confirming.html"), width=400)
    frame, _ = sign_in_widget(tab, live.new_signer())
    boxes = frame.eval_on_selector_all(
        "#pw-check > *", "els => els.map(e => e.getBoundingClientRect().toJSON())"
    )
    assert len(boxes) == 3
    for above, below in itertools.pairwise(boxes):
        assert below["top"] >= above["bottom"] - 1, boxes


def test_signing_without_javascript_gets_a_check_your_email_page(
    open_tab: Callable[..., Tab], widget_base: str, widget_server: live.LiveServer
) -> None:
    tab = open_tab(f"{widget_base}/widget/{SLUG}", width=400, javascript=False)
    page = tab.page
    page.wait_for_selector("#pw-form")
    before = api_count(widget_server)
    person = live.new_signer()
    page.fill("#pw-name", person["name"])
    page.fill("#pw-email", person["email"])
    with page.expect_navigation() as navigation:
        page.click(".pw-submit")
    response = navigation.value
    # Post, redirect, get: the page has an address of its own, which names nobody.
    assert response is not None and response.status == 200
    assert response.request.method == "GET"
    assert response.request.redirected_from is not None
    assert response.request.redirected_from.method == "POST"
    assert "done=" in page.url and "/api/" not in page.url
    assert person["email"] not in page.url and person["email"] not in page.content()
    assert page.is_visible("#pw-check-h")
    assert page.inner_text("#pw-check-h") == EN("check_heading")
    assert page.inner_text(".pw-check-text") == EN("check_text_sent")
    assert page.is_visible(f"#pw-check p:text-is({json.dumps(EN('check_spam'))})")
    assert page.is_hidden("#pw-form") and page.is_hidden("#pw-thanks")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert api_count(widget_server) == before
    assert len(mails_to(widget_server, person["email"])) == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-check-email-no-js-400.png"), full_page=True)
    # A reload shows the same page (no JSON, no second submission, no second mail).
    reloaded = page.reload()
    assert reloaded is not None and reloaded.status == 200
    assert page.inner_text("#pw-check-h") == EN("check_heading")
    assert len(mails_to(widget_server, person["email"])) == 1


# --- Confirming from the mail --------------------------------------------------------------------


def test_confirming_from_the_mail_counts_and_the_widget_follows(
    open_tab: Callable[..., Tab], pages: PartnerSite, widget_server: live.LiveServer
) -> None:
    partner = open_tab(pages.url("/confirming.html"), width=400, clock=True)
    person = live.new_signer()
    frame, status = sign_in_widget(partner, person)
    assert status == 202
    before = shown_count(frame)
    assert before == api_count(widget_server)
    url = mailed_link(widget_server, person["email"], "confirm")

    # The link opens in a browser of its own, scripts on, as a scanner's would: nothing counts.
    link = open_tab(url, width=600)
    page = link.page
    assert page.inner_text("h1") == EN("confirm_title")
    assert page.get_by_text(EN("confirm_name", name=person["name"]), exact=True).is_visible()
    assert page.get_by_text(
        PETITION.in_language("en").organiser, exact=True
    ).is_visible()  # the box ticked
    button = page.get_by_role("button", name=EN("confirm_button"), exact=True)
    assert button.is_visible()
    page.wait_for_timeout(1_000)
    assert api_count(widget_server) == before
    assert [m for m, _ in link.requests] == ["GET"]  # the page alone: nothing loads, nothing posts
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "confirm-page-600.png"), full_page=True)

    # A person confirms with the keyboard: Tab to the button, Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
    else:
        raise AssertionError("Tab never reached the button")
    ring = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
    )
    assert ring[0] != "none" and ring[1] > 0, ring  # focus is visible
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    answer = navigation.value
    assert answer is not None and answer.status == 200 and answer.request.method == "POST"
    assert page.inner_text("h1") == EN("confirmed_title") == "Your signature counts"
    assert page.url == url  # the link's own address: reloading it shows the same
    assert api_count(widget_server) == before + 1
    page.screenshot(path=str(ARTIFACTS / "confirmed-page-600.png"), full_page=True)

    # The widget on the partner page follows at its next poll.
    partner.page.clock.run_for(POLL_MS)
    frame.wait_for_selector(f'.pw-track[aria-valuenow="{before + 1}"]', state="attached")
    assert frame.inner_text("#pw-count strong").startswith(f"{before + 1:,} ")
    assert 200 in partner.polls
    # Reloading the answer changes nothing more.
    with page.expect_navigation():
        page.reload()
    assert page.inner_text("h1") == EN("confirmed_title")
    assert api_count(widget_server) == before + 1


# --- Accessibility of the link pages -------------------------------------------------------------


def link_page_checks(page: Any, width: int) -> None:
    """What can be checked without axe-core (not available here; the other browser tests do
    not use it either): the language, a title, one h1, a name for every button and link, text
    contrast of at least 4.5:1, and no horizontal scroll."""
    assert page.get_attribute("html", "lang") == "en"
    assert page.title().strip()
    assert page.locator("h1").count() == 1
    for role in ("button", "link"):
        found = page.get_by_role(role)
        for index in range(found.count()):
            snapshot = found.nth(index).aria_snapshot()
            assert re.match(rf'- {role} "[^"]+', snapshot), snapshot  # it has a name
    ratios = page.evaluate(CONTRAST_JS)
    assert all(r >= 4.5 for _, r in ratios), ratios
    sizes = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert sizes[0] <= sizes[1] == width, sizes


# Colour helpers for the browser: relative luminance and contrast ratio (WCAG 2).
COLOUR_JS = """
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (x, y) => { const a = lum(x), b = lum(y);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
"""

# The contrast of each text element's colour against its nearest opaque background.
CONTRAST_JS = (
    "(() => {"
    + COLOUR_JS
    + """
  const background = e => { for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0) return c; }
    return [255, 255, 255]; };
  return [...document.querySelectorAll('h1, p, li, button, a')].map(e =>
    [e.tagName + ': ' + e.textContent.slice(0, 30),
     ratio(rgb(getComputedStyle(e).color), background(e))]);
})()
"""
)

# The contrast between two CSS colours, given as [colour, colour].
CONTRAST_OF_JS = "([x, y]) => {" + COLOUR_JS + " return ratio(rgb(x), rgb(y)); }"


def sign_through_the_api(server: live.LiveServer, person: dict[str, str]) -> None:
    token = httpx.get(server.url(f"/api/petitions/{SLUG}/token"), timeout=5).json()["token"]
    body = {"token": token, **person, "consent_organiser": True}
    answer = httpx.post(server.url(f"/api/petitions/{SLUG}/signatures"), json=body, timeout=5)
    assert answer.status_code == 202


@pytest.mark.parametrize("width", [375, 320])
def test_link_pages_pass_basic_accessibility_checks(
    open_tab: Callable[..., Tab], widget_server: live.LiveServer, width: int
) -> None:
    person = live.new_signer()
    sign_through_the_api(widget_server, person)
    confirm = mailed_link(widget_server, person["email"], "confirm")
    withdraw = mailed_link(widget_server, person["email"], "withdraw")
    shots = []

    tab = open_tab(confirm, width=width, height=700)
    page = tab.page
    link_page_checks(page, width)
    assert page.get_by_role("button", name=EN("confirm_button"), exact=True).count() == 1
    shots.append(("confirm", page.screenshot(full_page=True)))
    with page.expect_navigation():
        page.get_by_role("button").click()
    assert page.inner_text("h1") == EN("confirmed_title")
    link_page_checks(page, width)
    shots.append(("confirmed", page.screenshot(full_page=True)))

    tab = open_tab(withdraw, width=width, height=700)
    page = tab.page
    link_page_checks(page, width)
    assert page.get_by_role("button", name=EN("withdraw_button"), exact=True).count() == 1
    shots.append(("withdraw", page.screenshot(full_page=True)))
    with page.expect_navigation():
        page.get_by_role("button").click()
    assert page.inner_text("h1") == EN("withdrawn_title")
    link_page_checks(page, width)

    tab = open_tab(widget_server.url("/confirm/" + "A" * 43), width=width, expected_status=404)
    link_page_checks(tab.page, width)
    assert tab.page.get_by_role("button").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    for name, png in shots:
        (ARTIFACTS / f"{name}-page-{width}.png").write_bytes(png)


def test_the_link_pages_styles_apply(
    open_tab: Callable[..., Tab], widget_server: live.LiveServer
) -> None:
    person = live.new_signer()
    sign_through_the_api(widget_server, person)
    tab = open_tab(mailed_link(widget_server, person["email"], "confirm"))
    tab.page.wait_for_timeout(200)  # console messages may arrive just after the load
    styled = tab.page.evaluate(
        "[getComputedStyle(document.querySelector('main')).backgroundColor,"
        " getComputedStyle(document.querySelector('button')).backgroundColor]"
    )
    assert tab.refused == []
    assert styled == ["rgb(255, 255, 255)", "rgb(11, 92, 173)"]  # link.css's card and button


def test_the_link_pages_focus_ring_stands_out(
    open_tab: Callable[..., Tab], widget_server: live.LiveServer
) -> None:
    """The ring around the focused button is at least 3:1 against the card behind it."""
    person = live.new_signer()
    sign_through_the_api(widget_server, person)
    page = open_tab(mailed_link(widget_server, person["email"], "confirm")).page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    colours = page.evaluate(
        "[getComputedStyle(document.activeElement).outlineColor,"
        " getComputedStyle(document.querySelector('main')).backgroundColor]"
    )
    assert colours[1] == "rgb(255, 255, 255)", colours  # the page's own styles apply
    ratio = page.evaluate(CONTRAST_OF_JS, colours)
    assert ratio >= 3, (colours, ratio)
