"""The widget in a real browser, embedded across sites: a partner page on http://127.0.0.1:A and
the widget on http://localhost:B. Every visit also checks that the console stayed clean (no
Content-Security-Policy violation, no script error) and that nothing was requested from any
other origin. Screenshots go to test-artifacts/."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.domain import i18n
from server.web import demo, widget
from tests.browser.conftest import ARTIFACTS, PartnerSite
from tests.support import live, petitions

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
EXAMPLE = petitions.example()
TIMEOUT_MS = 10_000  # the longest any single wait in the browser may take


def snippet(base: str, **data: str) -> str:
    attrs = "".join(f' data-{k}="{v}"' for k, v in data.items())
    return f'<script async src="{base}/embed.js" data-petition="{SLUG}"{attrs}></script>'


def host_page(body: str, head: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>Partner</title>{head}</head>'
        f"<body>{body}</body></html>"
    )


@dataclasses.dataclass
class Visit:
    page: Any
    problems: list[str]  # console errors and warnings, script errors
    requests: list[str]

    def widgets(self) -> Any:
        return self.page.locator("iframe.petition-widget")

    def frame(self, index: int = 0) -> Any:
        """The document inside the index-th widget, once its script has run."""
        handle = self.widgets().nth(index).element_handle()
        frame = handle.content_frame()
        frame.wait_for_selector("#pw-form, .pw-closed", state="attached")
        return frame


@pytest.fixture(scope="module")
def widget_base(widget_server: live.LiveServer) -> str:
    return f"http://localhost:{widget_server.port}"


@pytest.fixture(scope="module")
def pages(partner_site: PartnerSite, widget_base: str) -> PartnerSite:
    partner_site.pages.update(
        {
            "/partner.html": demo.partner_page(widget_base),
            "/simple.html": host_page(
                '<p><a id="before" href="#">Before the widget</a></p>'
                f'<div style="max-width:100%">{snippet(widget_base, partner="friends")}</div>'
                '<p><a id="after" href="#">After the widget</a></p>'
            ),
            "/evil.html": host_page("<p>Someone else's frame</p>"),
            "/simple-auto.html": host_page(snippet(widget_base, partner="friends", theme="auto")),
        }
    )
    return partner_site


@pytest.fixture
def visit(chromium: Any, pages: PartnerSite, widget_base: str) -> Iterator[Callable[..., Visit]]:
    """Opens a partner page in a fresh browser context; afterwards checks the visit was clean."""
    contexts = []
    visits: list[Visit] = []
    allowed = (pages.url("/"), pages.url("/", "localhost"), widget_base + "/", "data:")

    def open_page(
        path: str,
        width: int = 1200,
        height: int = 900,
        javascript: bool = True,
        clock: bool = False,
        colour_scheme: str = "light",
        reduced_motion: str = "no-preference",
    ) -> Visit:
        context = chromium.new_context(
            viewport={"width": width, "height": height},
            java_script_enabled=javascript,
            color_scheme=colour_scheme,
            reduced_motion=reduced_motion,
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page, [], [])
        visits.append(seen)
        page.on("console", lambda m: seen.problems.extend(console_problems(m)))
        page.on("pageerror", lambda e: seen.problems.append(f"script error: {e}"))
        context.on("request", lambda r: seen.requests.append(r.url))
        if clock:
            page.clock.install()
        page.goto(pages.url(path))
        return seen

    yield open_page
    for context in contexts:
        context.close()
    for seen in visits:
        assert not seen.problems, seen.problems
        foreign = [url for url in seen.requests if not url.startswith(allowed)]
        assert not foreign, foreign


def console_problems(message: Any) -> list[str]:
    """Errors and warnings, except the console's note of a failed signature request (Chromium
    logs every 4xx or 5xx answer and every network error; the tests provoke these on purpose)."""
    if message.type not in ("error", "warning"):
        return []
    expected = re.fullmatch(
        r"Failed to load resource: (the server responded with a status of (422|409|503) .*"
        r"|net::ERR_FAILED)",
        message.text,
    )
    if expected and message.location.get("url", "").endswith("/signatures"):
        return []
    return [f"{message.type}: {message.text} ({message.location.get('url')})"]


def wait_until(frame: Any, expression: str, arg: Any = None) -> None:
    """Until `expression` (a function of `arg`) is true in the frame. Playwright's own
    wait_for_function evaluates strings with eval(), which the widget's CSP rightly refuses;
    `evaluate` is not affected. Bounded: it gives up after TIMEOUT_MS."""
    for _ in range(TIMEOUT_MS // 50):
        if frame.evaluate(expression, arg):
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


def assert_no_inner_scrollbar(frame: Any) -> None:
    sizes = frame.evaluate(
        "[document.documentElement.scrollHeight, innerHeight,"
        " document.documentElement.scrollWidth, innerWidth]"
    )
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], sizes


def shown_count(frame: Any) -> int:
    return int(frame.get_attribute(".pw-track", "aria-valuenow"))


def api_count(server: live.LiveServer) -> int:
    count: int = httpx.get(server.url(f"/api/petitions/{SLUG}")).json()["signatures"]
    return count


def sign_elsewhere(server: live.LiveServer) -> None:
    """Another signer, through the API."""
    token = httpx.get(server.url(f"/api/petitions/{SLUG}/token")).json()["token"]
    body = {"token": token, **live.new_signer()}
    response = httpx.post(server.url(f"/api/petitions/{SLUG}/signatures"), json=body)
    assert response.status_code == 201


# --- Signing -------------------------------------------------------------------------------------


def test_sign_on_the_partner_page(
    visit: Callable[..., Visit], widget_server: live.LiveServer
) -> None:
    seen = visit("/partner.html")
    assert seen.widgets().count() == 2  # an English widget in the sidebar, a Russian one above
    frame = seen.frame(1)
    wait_fitted(frame)
    before = shown_count(frame)
    assert before == api_count(widget_server)
    person = live.new_signer()
    frame.fill("#pw-name", person["name"])
    frame.fill("#pw-email", person["email"])
    frame.select_option("#pw-country", "DE")
    frame.check("#pw-c-org")
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert frame.evaluate("document.activeElement.id") == "pw-thanks-h"
    assert frame.is_hidden("#pw-form")
    assert shown_count(frame) == before + 1 == api_count(widget_server)
    assert frame.inner_text("#pw-count strong") == f"{before + 1:,} " + (
        "person has signed" if before + 1 == 1 else "people have signed"
    )
    # Plain share links; the copy button works across origins (allow="clipboard-write").
    links = frame.eval_on_selector_all(".pw-share a", "els => els.map(a => a.href)")
    assert links[0].startswith("mailto:")
    assert all(urllib.parse.urlsplit(u).scheme == "https" for u in links[1:])
    frame.click(".pw-copy")
    frame.wait_for_selector(".pw-copied:not(:empty)", state="attached")
    assert frame.inner_text(".pw-copied") == "Link copied"
    wait_fitted(frame)  # the frame shrank to the thank-you
    # The other widget on the page was not touched.
    assert seen.frame(0).is_visible("#pw-form")
    assert seen.widgets().nth(1).get_attribute("title") == EXAMPLE.texts["en"].title


def test_keyboard_only_signing_with_visible_focus(
    visit: Callable[..., Visit], widget_server: live.LiveServer
) -> None:
    seen = visit("/simple.html", width=400)
    frame = seen.frame()
    wait_fitted(frame)
    before = shown_count(frame)
    seen.page.focus("#before")
    keyboard = seen.page.keyboard
    focused: list[str] = []

    def tab_to(target: str) -> None:
        for _ in range(12):
            keyboard.press("Tab")
            state = frame.evaluate(
                "(() => { const e = document.activeElement, s = getComputedStyle(e);"
                " return [document.hasFocus(), e.id || e.tagName, s.outlineStyle,"
                " parseFloat(s.outlineWidth)]; })()"
            )
            if state[0]:
                focused.append(state[1])
                assert state[2] == "solid" and state[3] >= 2, state  # a visible focus ring
            if state[0] and state[1] == target:
                return
        raise AssertionError(f"Tab never reached {target}: {focused}")

    person = live.new_signer()
    tab_to("pw-name")
    keyboard.type(person["name"])
    tab_to("pw-email")
    keyboard.type(person["email"])
    tab_to("pw-country")
    keyboard.type("Germany")
    tab_to("pw-c-org")
    keyboard.press("Space")
    tab_to("BUTTON")
    keyboard.press("Enter")
    frame.wait_for_selector("#pw-thanks-h:focus")
    assert focused[:2] == ["SUMMARY", "SUMMARY"]  # the texts come first, then the form
    assert "pw-website" not in focused  # the honeypot is out of the tab order
    assert frame.eval_on_selector("#pw-country", "e => e.value") == "DE"
    assert frame.is_checked("#pw-c-org")
    assert shown_count(frame) == before + 1 == api_count(widget_server)


def test_signing_without_javascript(
    visit: Callable[..., Visit], widget_server: live.LiveServer
) -> None:
    seen = visit("/partner.html", javascript=False)
    assert seen.widgets().count() == 0  # no loader ran: the <noscript> iframe stands in
    frame = seen.page.locator("aside iframe").element_handle().content_frame()
    frame.wait_for_selector("#pw-form")
    before = shown_count(frame)
    person = live.new_signer()
    frame.fill("#pw-name", person["name"])
    frame.click(".pw-submit")  # the email is missing: the server answers with the form again
    frame.wait_for_selector("#pw-email-err:not(:empty)")
    assert frame.inner_text("#pw-email-err") == "This field is required."
    assert frame.get_attribute("#pw-email", "aria-invalid") == "true"
    assert frame.input_value("#pw-name") == person["name"]
    assert frame.inner_text("#pw-alert") == "Please check the highlighted fields."
    frame.fill("#pw-email", person["email"])
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert frame.is_hidden("#pw-form")
    assert shown_count(frame) == before + 1 == api_count(widget_server)
    # The thank-you has an address of its own: a reload shows it again, never the API's JSON.
    assert "done=" in frame.url and "/api/" not in frame.url
    assert person["email"] not in frame.url and person["name"] not in frame.content()
    frame.evaluate("location.reload()")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert "method_not_allowed" not in frame.content()
    assert shown_count(frame) == before + 1 == api_count(widget_server)


def test_russian_widget(visit: Callable[..., Visit], widget_server: live.LiveServer) -> None:
    seen = visit("/partner.html")
    seen.widgets().nth(0).scroll_into_view_if_needed()
    frame = seen.frame(0)
    wait_fitted(frame)
    ru = i18n.catalog("ru")
    assert frame.get_attribute("html", "lang") == "ru"
    assert seen.widgets().nth(0).get_attribute("title") == EXAMPLE.texts["ru"].title
    assert frame.inner_text("h1") == EXAMPLE.texts["ru"].title
    before = shown_count(frame)
    assert frame.inner_text("#pw-count strong") == ru.plural("signed_count", before)
    assert frame.inner_text(".pw-goal") == "Цель: 50\u00a0000"
    frame.click(".pw-submit")  # nothing filled in: errors beside the fields, in Russian
    assert frame.inner_text("#pw-alert") == "Проверьте отмеченные поля."
    assert frame.get_attribute("#pw-alert", "role") == "alert"
    assert frame.inner_text("#pw-name-err") == "Это поле нужно заполнить."
    assert frame.evaluate("document.activeElement.id") == "pw-name"
    person = live.new_signer()
    frame.fill("#pw-name", person["name"])
    frame.fill("#pw-email", person["email"].replace("@", "@@"))
    frame.click(".pw-submit")
    assert frame.inner_text("#pw-email-err") == ru("error_email_invalid")
    assert frame.input_value("#pw-name") == person["name"]  # input is kept
    assert frame.inner_text("#pw-name-err") == ""
    frame.fill("#pw-email", person["email"])
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert frame.inner_text("#pw-thanks-h") == "Спасибо за вашу подпись!"
    assert frame.inner_text("#pw-count strong") == ru.plural("signed_count", before + 1)
    assert shown_count(frame) == api_count(widget_server)


def test_failures_never_lose_the_input(
    visit: Callable[..., Visit], widget_server: live.LiveServer
) -> None:
    seen = visit("/simple.html", width=400)
    frame = seen.frame()
    wait_fitted(frame)
    before = shown_count(frame)
    person = live.new_signer()
    frame.fill("#pw-name", person["name"])
    frame.fill("#pw-email", person["email"])
    frame.check("#pw-c-org")
    # The connection fails: an error is announced, every field keeps what was typed.
    seen.page.context.route("**/signatures", lambda route: route.abort())
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-alert p", state="attached")
    assert frame.inner_text("#pw-alert") == i18n.catalog("en")("error_network")
    assert frame.input_value("#pw-name") == person["name"]
    assert frame.input_value("#pw-email") == person["email"]
    assert frame.is_checked("#pw-c-org")
    assert frame.inner_text(".pw-submit") == "Sign"
    # The server is busy once (503, Retry-After: 1): the widget says so and tries again alone.
    seen.page.context.unroute("**/signatures")
    busy = {"left": 1}

    def once_busy(route: Any) -> None:
        if busy["left"]:
            busy["left"] -= 1
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body=json.dumps({"error": "storage_unavailable", "message": "busy"}),
            )
        else:
            route.continue_()

    seen.page.context.route("**/signatures", once_busy)
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert busy["left"] == 0
    assert shown_count(frame) == before + 1 == api_count(widget_server)


# --- Layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [320, 800])
def test_frames_fit_their_content(visit: Callable[..., Visit], width: int) -> None:
    seen = visit("/partner.html", width=width)
    for index in range(seen.widgets().count()):
        seen.widgets().nth(index).scroll_into_view_if_needed()  # they load lazily
        frame = seen.frame(index)
        wait_fitted(frame)
        assert_no_inner_scrollbar(frame)
        box = seen.widgets().nth(index).bounding_box()
        assert 280 <= box["width"] <= width
        # Opening the full text grows the frame; it still needs no scrollbar.
        height = box["height"]
        frame.click(".pw-more summary")
        wait_fitted(frame)
        assert seen.widgets().nth(index).bounding_box()["height"] > height + 500
        assert_no_inner_scrollbar(frame)
        frame.click(".pw-more summary")
        wait_fitted(frame)
    assert seen.page.evaluate("document.documentElement.scrollWidth") <= width
    # The whole page, every widget in it, as a partner's visitor sees it.
    full = seen.page.evaluate("document.documentElement.scrollHeight")
    seen.page.set_viewport_size({"width": width, "height": min(full, 8000)})
    for index in range(seen.widgets().count()):
        wait_fitted(seen.frame(index))
    ARTIFACTS.mkdir(exist_ok=True)
    seen.page.screenshot(path=str(ARTIFACTS / f"partner-page-{width}.png"))


def test_dark_scheme_reduced_motion_at_the_narrowest_width(visit: Callable[..., Visit]) -> None:
    # data-theme="auto": the widget follows the visitor's scheme (the default is light).
    seen = visit("/simple-auto.html", width=280, colour_scheme="dark", reduced_motion="reduce")
    frame = seen.frame()
    wait_fitted(frame)
    assert_no_inner_scrollbar(frame)
    colours = frame.evaluate(
        "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
    )
    assert colours == ["rgb(23, 24, 27)", "rgb(236, 238, 242)"]
    assert (
        frame.evaluate("getComputedStyle(document.querySelector('.pw-fill')).transitionDuration")
        == "0s"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    seen.widgets().first.screenshot(path=str(ARTIFACTS / "widget-dark-280.png"))


def test_layout_mirrors_for_right_to_left(visit: Callable[..., Visit]) -> None:
    """The document's direction alone mirrors the layout (logical properties throughout);
    the Arabic widget itself is checked in test_languages_browser.py."""
    seen = visit("/simple.html", width=400)
    frame = seen.frame()
    wait_fitted(frame)

    def sides() -> list[float]:
        lefts: list[float] = frame.evaluate(
            "[...['#pw-c-org', 'label[for=pw-c-org]']].map(s =>"
            " document.querySelector(s).getBoundingClientRect().left)"
        )
        return lefts

    checkbox, label = sides()
    assert checkbox < label
    frame.evaluate("document.documentElement.dir = 'rtl'")
    checkbox, label = sides()
    assert checkbox > label
    border = frame.evaluate(
        "(() => { const s = getComputedStyle(document.querySelector('.pw-update'));"
        " return [s.borderRightWidth, s.borderLeftWidth]; })()"
    )
    assert border == ["3px", "0px"]


# --- The host page is never harmed, and cannot harm the widget ---------------------------------

HOSTILE_CSS = """
<style>
  * { all: unset; }
  iframe:not(.video-embed) {
    display: none !important; visibility: hidden !important; opacity: 0 !important;
    width: 10px !important; height: 0 !important; max-height: 0 !important;
    position: absolute !important; left: -9999px !important; transform: scale(0) !important;
    pointer-events: none !important; border: 5px solid red !important;
  }
</style>
<script>
  // What the page looks like before the loader runs: its globals and its styling.
  document.documentElement.setAttribute("data-globals", JSON.stringify(Object.keys(window)));
</script>
"""


def test_hostile_host_css_still_shows_a_working_widget(
    visit: Callable[..., Visit],
    pages: PartnerSite,
    widget_base: str,
    widget_server: live.LiveServer,
) -> None:
    body = (
        '<div class="sidebar"><h2>Sign</h2>'
        f"{snippet(widget_base, lang='en', accent='#c0392b')}</div>"
        '<div class="footer"><p style="color: rgb(1, 2, 3)">Footer</p></div>'
    )
    pages.pages["/hostile.html"] = host_page(body, HOSTILE_CSS)
    seen = visit("/hostile.html", width=400)
    frame = seen.frame()
    wait_fitted(frame)
    box = seen.widgets().first.bounding_box()
    assert box["width"] >= 380 and box["height"] > 800
    assert seen.widgets().first.is_visible()
    before = shown_count(frame)
    person = live.new_signer()
    frame.fill("#pw-name", person["name"])
    frame.fill("#pw-email", person["email"])
    frame.click(".pw-submit")
    frame.wait_for_selector("#pw-thanks-h", state="visible")
    assert shown_count(frame) == before + 1 == api_count(widget_server)
    # The loader touched nothing but its own iframe: no new globals, no styles, no elements.
    page = seen.page
    added = page.evaluate(
        "(() => { const before = JSON.parse(document.documentElement.dataset.globals);"
        " return Object.keys(window).filter(k => !before.includes(k) && isNaN(Number(k))); })()"
    )
    assert added == []
    styled = page.eval_on_selector_all(
        "[style]", "els => els.map(e => e.tagName + ':' + (e.className || ''))"
    )
    assert styled == ["IFRAME:petition-widget", "P:"]
    assert page.evaluate("document.styleSheets.length") == 1
    assert page.evaluate("document.querySelectorAll('iframe').length") == 1
    assert page.get_attribute(".footer p", "style") == "color: rgb(1, 2, 3)"


def test_only_the_widget_itself_can_resize_its_frame(visit: Callable[..., Visit]) -> None:
    seen = visit("/simple.html", width=400)
    page = seen.page
    widget_frame = seen.frame()
    wait_fitted(widget_frame)
    src = seen.widgets().first.get_attribute("src")
    frame_id = urllib.parse.parse_qs(urllib.parse.urlsplit(src).query)["frame"][0]
    height = seen.widgets().first.bounding_box()["height"]
    # Someone else's frame on the page, from another origin (localhost:A), and a listener
    # that counts messages: it runs after the loader's, which was added first.
    evil_url = page.url.replace("127.0.0.1", "localhost").replace("simple", "evil")
    page.evaluate(
        "url => { const f = document.createElement('iframe'); f.src = url; f.id = 'evil';"
        " document.body.appendChild(f); window.received = 0;"
        " window.addEventListener('message', () => { window.received += 1; }); }",
        evil_url,
    )
    evil = page.locator("#evil").element_handle().content_frame()
    evil.wait_for_load_state()
    envelope = {"petition-widget": {"id": frame_id, "height": 5000, "title": "Hijacked"}}
    post = "([m, target]) => parent.postMessage(m, target)"
    evil.evaluate(post, [envelope, "*"])  # the right envelope, the wrong origin
    page.evaluate("m => window.postMessage(m, '*')", envelope)  # the host page itself
    widget_frame.evaluate(post, [{"height": 5000}, "*"])  # the right origin, no envelope
    wrong_id = {"petition-widget": {"id": frame_id + "x", "height": 5000}}
    widget_frame.evaluate(post, [wrong_id, "*"])  # the right origin, another frame's id
    page.wait_for_function("window.received === 4")  # the loader's listener ran first
    assert seen.widgets().first.bounding_box()["height"] == height
    assert seen.widgets().first.get_attribute("title") == EXAMPLE.texts["en"].title
    # The same message from the widget's own frame and origin is obeyed.
    widget_frame.evaluate(post, [{"petition-widget": {"id": frame_id, "height": 999}}, "*"])
    page.wait_for_function("window.received === 5")
    assert seen.widgets().first.bounding_box()["height"] == 999


# --- The count follows other signers -------------------------------------------------------------


def test_count_moves_when_others_sign(
    visit: Callable[..., Visit], widget_server: live.LiveServer
) -> None:
    # The page's clock is Playwright's: a poll interval passes when the test says so.
    seen = visit("/simple.html", width=400, clock=True)
    polls: list[int] = []
    seen.page.context.on(
        "response", lambda r: polls.append(r.status) if r.url.endswith("/count") else None
    )
    frame = seen.frame()
    before = shown_count(frame)
    interval_ms = int(widget.POLL_SECONDS * 1000 * 1.25)  # the longest jittered wait
    seen.page.clock.run_for(interval_ms)
    wait_for_polls(seen, polls, 1)
    assert polls == [304]  # nobody signed meanwhile: the count was not even sent
    sign_elsewhere(widget_server)
    seen.page.clock.run_for(interval_ms)
    wait_for_polls(seen, polls, 2)
    frame.wait_for_selector(f'.pw-track[aria-valuenow="{before + 1}"]', state="attached")
    assert polls == [304, 200]
    assert frame.inner_text("#pw-count strong").startswith(f"{before + 1:,} ")
    # A hidden page does not poll. (A fetch made afterwards is a sync point: a poll started
    # by the clock would have been requested before it.)
    frame.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true});"
        " document.dispatchEvent(new Event('visibilitychange'))"
    )
    seen.page.clock.run_for(interval_ms * 3)
    assert frame.evaluate("fetch('/healthz').then(r => r.status)") == 200
    assert polls == [304, 200]


def wait_for_polls(seen: Visit, polls: list[int], n: int) -> None:
    """Until n answers to count polls have arrived (bounded: it never waits for long)."""
    for _ in range(TIMEOUT_MS // 50):
        if len(polls) >= n:
            return
        seen.page.wait_for_timeout(50)
    raise AssertionError(f"expected {n} polls, saw {polls}")


def test_weights_measured_in_the_browser_match_the_budget(
    visit: Callable[..., Visit], widget_base: str
) -> None:
    """What the frame downloads before it first renders, as Chromium counted it."""
    seen = visit("/simple.html", width=400)
    wait_fitted(seen.frame())
    frame_requests = [u for u in seen.requests if u.startswith(widget_base)]
    assert frame_requests[0] == f"{widget_base}/embed.js"
    first_render = frame_requests[1:4]
    assert first_render[0].startswith(f"{widget_base}/widget/{SLUG}?")
    assert sorted(u.rsplit(".", 1)[1] for u in first_render[1:]) == ["css", "js"]
    assert len([u for u in frame_requests if "/widget/assets/" in u]) == 2
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "widget-requests.json").write_text(json.dumps(frame_requests, indent=2))
