"""Arabic, right to left, in Chromium, beside German, left to right: the layout mirrors at a
phone's width and a desktop's (asserted as geometry, not compared with golden images, which
break whenever Debian's Chromium or fonts change; the screenshots are kept in
test-artifacts/), the progress bar fills from the right, the script's numbers and plural
forms are the server's (Babel and Intl agree), and the form and its errors work from the
keyboard. Other languages add nothing here that tests/web/test_languages.py does not check."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.domain import i18n
from server.domain.petitions import Petition
from tests.browser.conftest import ARTIFACTS, PartnerSite
from tests.support import backends, live, petitions

pytestmark = pytest.mark.browser

SLUG = "example-in-arabic-and-german"
TIMEOUT_MS = 10_000
WIDTHS = (375, 1280)


# The example petition's texts, shortened, in Arabic and German: the petition's own words in
# the page's language, as a campaign would have them.
TEXTS = {
    "ar": {
        "title": "عمل حركة مجتمع الميم في روسيا في خطر",
        "summary": "بعد أن أمرت السلطات الروسية بإغلاق «ميموريال»، إحدى أقدم منظمات الحقوق"
        " المدنية في روسيا، رفعت دعوى لتصفية أكبر منظمة لمجتمع الميم في البلاد. تحرّك"
        " لإنقاذ حركة مجتمع الميم في روسيا.",
        "target": "الحكومة الروسية",
        "statement": "نطالب الحكومة الروسية بالكفّ عن ملاحقة الشبكة الروسية لمجتمع الميم.",
        "body": "تساعد الشبكة الروسية لمجتمع الميم الناس منذ سنوات. لا تدعوا هذا العمل يتوقف.",
        "legal_notice": "نحن ملزمون بموجب القانون الروسي بذكر أن وزارة العدل الروسية صنّفت"
        " المنظمتين «عميلين أجنبيين».",
        "update": "قُدّمت التواقيع الأولى إلى المحكمة.",
    },
    "de": {
        "title": "Die Arbeit der russischen LGBT+-Bewegung ist in Gefahr",
        "summary": "Nach der Auflösung von Memorial, einer der ältesten Bürgerrechtsgruppen"
        " Russlands, wollen die Behörden die größte LGBT+-Organisation des Landes auflösen"
        " lassen. Hilf, die russische LGBT+-Bewegung zu retten.",
        "target": "die russische Regierung",
        "statement": "Wir fordern die russische Regierung auf, das Russische LGBT-Netzwerk nicht"
        " länger zu verfolgen.",
        "body": "Das Russische LGBT-Netzwerk hilft seit Jahren Menschen in Not.",
        "legal_notice": "Nach russischem Recht müssen wir angeben, dass beide Organisationen als"
        " „ausländische Agenten“ eingestuft sind.",
        "update": "Die ersten Unterschriften wurden dem Gericht übergeben.",
    },
}


def petition() -> Petition:
    """The example petition, offered in English, Arabic and German."""
    example = petitions.example()
    english = example.texts["en"]
    texts = {"en": english}
    for lang, words in TEXTS.items():
        own = {k: v for k, v in words.items() if k != "update"}
        updates = tuple(dataclasses.replace(u, text=words["update"]) for u in english.updates)
        texts[lang] = dataclasses.replace(english, **own, updates=updates)
    return dataclasses.replace(example, slug=SLUG, texts=texts)


@pytest.fixture(scope="module")
def server(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("languages-browser")
    url = backends.sqlite_url(folder)
    live.prepare(url, [petition()])
    with live.LiveServer(url, folder) as running:
        # A few signatures: the bar is partly filled, and Arabic writes the count in digits
        # (it names none, one and two in words).
        for _ in range(3):
            token = httpx.get(running.url(f"/api/petitions/{SLUG}/token")).json()["token"]
            body = {"token": token, **live.new_signer()}
            signed = httpx.post(running.url(f"/api/petitions/{SLUG}/signatures"), json=body)
            assert signed.status_code == 201
        yield f"http://localhost:{running.port}"


def console_errors(message: Any) -> list[str]:
    """Errors, except the 422 the form's test provokes and the favicon a top-level page asks
    for (the widget is meant for a frame, and has none)."""
    url = message.location.get("url", "")
    if message.type != "error" or url.endswith("/favicon.ico"):
        return []
    if url.endswith("/signatures") and "status of 422" in message.text:
        return []
    return [f"{message.text} ({url})"]


@pytest.fixture
def open_widget(server: str, chromium: Any) -> Iterator[Any]:
    # The server first: preparing its database needs asyncio.run, impossible once Playwright runs.
    contexts = []
    problems: list[str] = []

    def open_page(lang: str, width: int) -> Any:
        context = chromium.new_context(viewport={"width": width, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: problems.extend(console_errors(m)))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{server}/widget/{SLUG}?lang={lang}")
        page.wait_for_selector("#pw-form")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, problems


def boxes(page: Any) -> dict[str, dict[str, float]]:
    """Left and right edges of the parts whose place shows the direction."""
    found: dict[str, dict[str, float]] = page.evaluate(
        """(() => {
          const out = {};
          const parts = {title: 'h1', track: '.pw-track', fill: '.pw-fill', name: '#pw-name',
                         checkbox: '#pw-c-org', label: 'label[for=pw-c-org]',
                         submit: '.pw-submit', main: '#pw', summary: '.pw-more summary'};
          for (const [k, s] of Object.entries(parts)) {
            const r = document.querySelector(s).getBoundingClientRect();
            out[k] = {left: r.left, right: r.right, width: r.width};
          }
          const range = document.createRange();
          range.selectNodeContents(document.querySelector('.pw-more summary'));
          const text = range.getBoundingClientRect();
          out.summary_text = {left: text.left, right: text.right, width: text.width};
          return out;
        })()"""
    )
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_arabic_mirrors_german(open_widget: Any, width: int) -> None:
    ar, de = open_widget("ar", width), open_widget("de", width)
    assert ar.evaluate("[document.documentElement.lang, document.documentElement.dir]") == [
        "ar",
        "rtl",
    ]
    assert de.evaluate("document.documentElement.dir") == "ltr"
    a, d = boxes(ar), boxes(de)
    page_width = ar.evaluate("document.documentElement.clientWidth")
    assert page_width == de.evaluate("document.documentElement.clientWidth")

    def mirrored(part: str) -> None:
        """The part sits where German's would, reflected in the page's vertical middle."""
        assert abs(a[part]["left"] - (page_width - d[part]["right"])) <= 1, (part, a, d)
        assert abs(a[part]["width"] - d[part]["width"]) <= 1, part

    for part in ("main", "track", "name", "checkbox", "submit"):
        mirrored(part)
    # Boxes that fill the column start on the other side: checkbox before its label in
    # reading order, that is to its right in Arabic and to its left in German.
    assert (
        a["checkbox"]["left"] > a["label"]["left"] and d["checkbox"]["right"] < d["label"]["right"]
    )
    # The disclosure's words start at the right edge in Arabic, the left in German.
    assert a["summary_text"]["right"] > a["summary"]["right"] - 40
    assert d["summary_text"]["left"] < d["summary"]["left"] + 40
    # The bar fills from the inline start: from the right in Arabic, the left in German.
    for boxes_of in (a, d):
        assert 0 < boxes_of["fill"]["width"] < boxes_of["track"]["width"]
    assert abs(a["fill"]["right"] - a["track"]["right"]) <= 0.5
    assert a["fill"]["left"] > a["track"]["left"] + 1
    assert abs(d["fill"]["left"] - d["track"]["left"]) <= 0.5
    assert d["fill"]["right"] < d["track"]["right"] - 1
    # Nothing spills sideways at a phone's width.
    assert ar.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    for lang, page in (("ar", ar), ("de", de)):
        page.screenshot(path=str(ARTIFACTS / f"widget-{lang}-{width}.png"), full_page=True)


def test_arabic_numbers_and_plurals_agree_with_the_server(open_widget: Any) -> None:
    """CLDR's default numbering system for Arabic, as Babel gives it on the server, is what
    Intl gives the widget's script in Chromium; and the plural category of every count up to
    1,200 is the same on both sides."""
    ar = i18n.catalog("ar")
    page = open_widget("ar", 375)
    data = page.evaluate("JSON.parse(document.getElementById('pw-data').textContent)")
    assert data["numbers"]["system"] == ar.numbering_system
    numbers = [0, 3, 11, 100, 1_234, 50_000, 1_234_567, 987_654_321]
    in_browser = page.evaluate(
        "([system, ns]) => ns.map(n =>"
        " new Intl.NumberFormat('ar', {numberingSystem: system}).format(n))",
        [ar.numbering_system, numbers],
    )
    assert in_browser == [ar.number(n) for n in numbers]
    categories = page.evaluate(
        "() => { const p = new Intl.PluralRules('ar'); const out = [];"
        " for (let n = 0; n <= 1200; n++) out.push(p.select(n)); return out; }"
    )
    assert categories == [ar.plural_category(n) for n in range(1201)]
    # The count the page shows is the server's, and so is the goal.
    count = int(page.get_attribute(".pw-track", "aria-valuenow"))
    assert page.inner_text("#pw-count strong") == ar.plural("signed_count", count)
    assert page.inner_text(".pw-goal") == ar("goal", goal=50_000)


def test_arabic_form_and_its_errors_by_keyboard(open_widget: Any) -> None:
    ar = i18n.catalog("ar")
    page = open_widget("ar", 375)
    before = int(page.get_attribute(".pw-track", "aria-valuenow"))
    keyboard = page.keyboard

    def tab_to(target: str) -> None:
        for _ in range(15):
            keyboard.press("Tab")
            if page.evaluate("document.activeElement.id || document.activeElement.tagName") == (
                target
            ):
                return
        raise AssertionError(f"Tab never reached {target}")

    # Straight to the button with nothing filled in: errors beside the fields, announced,
    # and the focus on the first field to fix.
    tab_to("BUTTON")
    keyboard.press("Enter")
    page.wait_for_selector("#pw-alert p")
    assert page.get_attribute("#pw-alert", "role") == "alert"
    assert page.inner_text("#pw-alert") == ar("form_errors")
    assert page.inner_text("#pw-name-err") == ar("error_required")
    assert page.evaluate("document.activeElement.id") == "pw-name"
    assert page.get_attribute("#pw-name", "aria-invalid") == "true"
    # The error sits under its field, aligned to the right as the field's label is.
    error = page.evaluate(
        "(() => { const e = document.querySelector('#pw-name-err').getBoundingClientRect(),"
        " f = document.querySelector('#pw-name').getBoundingClientRect();"
        " return [e.right, f.right, e.top >= f.bottom]; })()"
    )
    assert abs(error[0] - error[1]) <= 1 and error[2]
    person = live.new_signer("ar")
    keyboard.type(person["name"])
    tab_to("pw-email")
    keyboard.type(person["email"].replace("@", "@@"))
    keyboard.press("Enter")  # Enter in a field submits the form
    page.wait_for_selector("#pw-email-err:not(:empty)")
    assert page.inner_text("#pw-email-err") == ar("error_email_invalid")
    assert page.evaluate("document.activeElement.id") == "pw-email"
    assert page.input_value("#pw-name") == person["name"]  # the input is kept
    page.fill("#pw-email", "")
    keyboard.type(person["email"])
    tab_to("pw-c-org")
    keyboard.press("Space")
    tab_to("BUTTON")
    keyboard.press("Enter")
    page.wait_for_selector("#pw-thanks-h:focus")
    assert page.inner_text("#pw-thanks-h") == ar("thanks_heading")
    # The new count was written by the script: Intl, in CLDR's digits, the server's words.
    assert page.inner_text("#pw-count strong") == ar.plural("signed_count", before + 1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-ar-375-thanks.png"), full_page=True)


def test_the_loader_titles_the_frame_neutrally_until_the_frame_names_itself(
    server: str, chromium: Any, partner_site: PartnerSite
) -> None:
    """Before the frame has loaded (lazily, far down the page) its title is the petition's slug,
    which belongs to no language; once loaded, the frame posts its title in Arabic."""
    partner_site.pages["/arabic.html"] = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,"><title>Partner</title></head><body>'
        '<div style="height:5000px">Above the widget</div>'
        f'<script async src="{server}/embed.js" data-petition="{SLUG}" data-lang="ar"></script>'
        "</body></html>"
    )
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(partner_site.url("/arabic.html"))
        frame = page.locator("iframe.petition-widget")
        frame.wait_for(state="attached")
        assert frame.get_attribute("title") == SLUG
        frame.scroll_into_view_if_needed()
        for _ in range(TIMEOUT_MS // 50):
            if frame.get_attribute("title") != SLUG:
                break
            page.wait_for_timeout(50)
        assert frame.get_attribute("title") == TEXTS["ar"]["title"]
    finally:
        context.close()
