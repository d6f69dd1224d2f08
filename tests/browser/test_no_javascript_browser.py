"""The form tokens' minimum age and the page without JavaScript, in Chromium, on a server whose
tokens must be 30 s old (so that nothing here depends on how fast it runs): an expired form
signs again at once, with and without JavaScript; and the `<noscript>` iframe's one height
(`snippet.NOSCRIPT_HEIGHT`) covers the tallest page of every language at a phone's width."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from server.domain import i18n, snippet
from server.domain.form_tokens import FormTokens
from server.domain.petitions import Petition
from server.store.storage import Storage
from tests.browser.conftest import ARTIFACTS
from tests.support import backends, live, petitions

pytestmark = pytest.mark.browser

SLUG = "save-russian-lgbt-network"
PARTNER = "friends"
MIN_AGE = 30
TIMEOUT_MS = 15_000
PHONE = 375


def petition() -> Petition:
    """The example petition offered in every language: its own Russian texts, and its English
    ones elsewhere, so that what differs between languages is the widget's own words."""
    example = petitions.example()
    texts = {lang: example.texts.get(lang, example.texts["en"]) for lang in i18n.LANGUAGES}
    return dataclasses.replace(example, texts=texts)


@pytest.fixture(scope="module")
def widget_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("nojs-browser")
    url = backends.sqlite_url(folder)
    live.prepare(url, [petition()])

    async def add_partner() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            await storage.add_partner(pid, PARTNER, "Friends of the Network")
        finally:
            await storage.disconnect()

    asyncio.run(add_partner())
    with live.LiveServer(url, folder, token_min_age=MIN_AGE) as running:
        yield running


@pytest.fixture
def open_page(chromium: Any, widget_server: live.LiveServer) -> Iterator[Any]:
    contexts = []

    def new(path: str, javascript: bool = True, width: int = PHONE) -> Any:
        context = chromium.new_context(
            viewport={"width": width, "height": 800}, java_script_enabled=javascript
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"http://localhost:{widget_server.port}{path}")
        return page

    yield new
    for context in contexts:
        context.close()


def expired_token(lang: str = "en") -> str:
    """A genuine form token, issued two hours and more ago (its lifetime is 7,200 s)."""
    past = FormTokens([live.SECRET], lifetime=7200, min_age=0, clock=lambda: time.time() - 7300)
    return past.issue(SLUG, PARTNER, lang)


def count(server: live.LiveServer) -> int:
    import httpx

    value: int = httpx.get(server.url(f"/api/petitions/{SLUG}")).json()["signatures"]
    return value


def fill(page: Any, person: dict[str, str], token: str) -> None:
    page.fill("#pw-name", person["name"])
    page.fill("#pw-email", person["email"])
    page.eval_on_selector("input[name=token]", "(e, v) => { e.value = v; }", token)


def test_an_expired_form_with_javascript_signs_again_at_once(
    open_page: Any, widget_server: live.LiveServer
) -> None:
    """The answer to the expired form carries its renewal, which remembers that this form was
    shown long ago: sent again at once, it counts. Before, a new token came from /token, was
    "too fresh" (400), and the signer waited out the minimum age."""
    page = open_page(f"/widget/{SLUG}?partner={PARTNER}")
    page.wait_for_selector("#pw-form")
    before = count(widget_server)
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/signatures" in r.url else None)
    fill(page, live.new_signer(), expired_token())
    page.click(".pw-submit")
    page.wait_for_selector("#pw-thanks-h", state="visible")
    assert statuses == [400, 201]
    assert not [url for method, url in requests if "/token" in url]
    assert count(widget_server) == before + 1


def test_an_expired_form_without_javascript_signs_again_at_once(
    open_page: Any, widget_server: live.LiveServer
) -> None:
    page = open_page(f"/widget/{SLUG}?partner={PARTNER}&lang=de", javascript=False)
    page.wait_for_selector("#pw-form")
    before = count(widget_server)
    person = live.new_signer()
    fill(page, person, expired_token("de"))
    with page.expect_navigation():
        page.click(".pw-submit")
    de = i18n.catalog("de")
    assert page.inner_text("#pw-alert") == de("error_expired_token")
    assert page.input_value("#pw-email") == person["email"]
    with page.expect_navigation() as navigation:
        page.click(".pw-submit")  # at once: not "That was very fast"
    assert navigation.value is not None and navigation.value.status == 200
    assert page.is_visible("#pw-thanks-h")
    assert page.inner_text("#pw-thanks-h") == de("thanks_heading")
    assert f"partner={PARTNER}" in page.url and "done=" in page.url
    assert count(widget_server) == before + 1


def height(page: Any) -> int:
    value: float = page.evaluate("document.documentElement.getBoundingClientRect().height")
    return int(value + 0.999)


def test_the_noscript_height_covers_every_language_at_a_phones_width(
    open_page: Any, widget_server: live.LiveServer
) -> None:
    marks = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    heights: dict[str, dict[str, int]] = {}
    for lang in sorted(i18n.LANGUAGES):
        query = f"partner={PARTNER}&lang={lang}"
        page = open_page(f"/widget/{SLUG}?{query}", javascript=False)
        page.wait_for_selector("#pw-form")
        measured = {"form": height(page)}
        with page.expect_navigation():
            page.click(".pw-submit")  # nothing filled in: the form with its errors
        page.wait_for_selector("#pw-name-err:not(:empty)")
        measured["errors"] = height(page)
        for kind in ("signed", "check_email"):
            mark = marks.mark_answered(SLUG, kind)
            page.goto(f"http://localhost:{widget_server.port}/widget/{SLUG}?{query}&done={mark}")
            page.wait_for_selector("#pw-thanks-h" if kind == "signed" else "#pw-check-h")
            measured[kind] = height(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
        heights[lang] = measured
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "noscript-heights-375.json").write_text(json.dumps(heights, indent=1))
    tallest = max(max(m.values()) for m in heights.values())
    assert tallest <= snippet.NOSCRIPT_HEIGHT, heights
    # Not a wasteful blank either: within 15 % of the tallest page.
    assert tallest * 1.15 >= snippet.NOSCRIPT_HEIGHT, heights
    assert f"height:{snippet.NOSCRIPT_HEIGHT}px" in snippet.embed("https://x.example", SLUG)
