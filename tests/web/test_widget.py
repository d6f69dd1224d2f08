"""The widget over HTTP, on a live server on SQLite and PostgreSQL: the frame document and its
headers, the loader and assets, the live count, the no-JavaScript form, hostile petition texts,
and the weight budget. What only a browser can show is in tests/browser/."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import gzip
import hashlib
import html.parser
import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.cli.serving import DEMO_PARTNER
from server.domain import i18n
from server.domain.petitions import parse
from server.domain.placeholder import Space
from server.domain.snippet import NOSCRIPT_HEIGHT, embed
from server.store.storage import Storage
from server.web import assets, bundle, demo, widget
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
PAGE = f"/widget/{SLUG}"
SIGN = f"/api/petitions/{SLUG}/signatures"
EXAMPLE = petitions.example()
PARTNER_CODE = "friends"
PARTNER_NAME = 'Friends <script>alert("partner")</script> & Co'
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HTML = {"Accept": "text/html,application/xhtml+xml"}


def petition_toml(slug: str, extra: str = "", status: str = "open") -> str:
    return f"""
slug = "{slug}"
lang = "en"
status = "{status}"
goal = 1000
title = "Title of {slug}"
summary = "Summary of {slug}"
target = "The council"
statement = "We ask the council."
{extra}

[signing]
confirmation = "none"
"""


# Every text of this petition tries to get markup, scripts or event handlers into the page.
HOSTILE = parse(
    """
slug = "hostile"
lang = "en"
goal = 1000
title = '''<script>alert("title")</script> Title'''
summary = '''<img src=x onerror=alert(1)> "quoted" 'single' & more'''
body = '''
[click](javascript:alert(1)) and [caps](JaVaScRiPt:alert(2)) and [data](data:text/html,x)

<svg onload=alert(3)><a href="javascript:alert(4)">x</a></svg>

![image](https://example.org/x.png" onerror="alert(5))

<iframe src="javascript:alert(6)"></iframe> <object data="x"></object>
'''
target = '''</summary><script>alert(7)</script>'''
statement = '''<math><mtext></p><script>alert(8)</script></mtext></math> [ok](https://example.org/)'''
legal_notice = '''<style>*{display:none}</style><body onload=alert(9)>'''
organiser = '''"><svg/onload=alert(10)>'''

[form]
comment = "optional"

[[updates]]
date = 2024-01-02
text = '''<details open ontoggle=alert(11)>x</details>'''

[translations.ru]
title = '''<script>alert("ru")</script> Заголовок'''
summary = '''<img src=x onerror=alert(12)> Сводка'''

[signing]
confirmation = "none"
"""
)

EXTRA_PETITIONS = [
    HOSTILE,
    parse(
        petition_toml(
            "listed-sites",
            '[embed]\nframe_ancestors = ["https://partner.example", "https://*.allies.example"]',
        )
    ),
    parse(petition_toml("closed-one", status="closed")),
]
# The heaviest form the weight budget must hold: the example's Russian texts with a partner's
# box and the box "Show my name on the list delivered to {target}" (its unreviewed translations
# carry their English original too).
NAMED = dataclasses.replace(EXAMPLE, slug="named-to-target", name_to_target="optional")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """The shared live server, with the example petition, a known partner whose name is
    hostile, and the petitions above."""
    folder = tmp_path_factory.mktemp("widget")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [EXAMPLE, *EXTRA_PETITIONS, NAMED])

    async def add_partner() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            for slug in (SLUG, NAMED.slug):
                pid = await storage.petition_id(slug)
                assert pid is not None
                await storage.add_partner(pid, PARTNER_CODE, PARTNER_NAME)
        finally:
            await storage.disconnect()

    asyncio.run(add_partner())
    with live.LiveServer(url, folder) as running:
        yield running


# --- Reading documents ---------------------------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str = "", **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (not tag or n.tag == tag) and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]

    def find(self, tag: str = "", **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def by_id(self, id_: str) -> Node:
        return self.find(id=id_)

    def has(self, attr: str) -> bool:
        return attr in self.attrs

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def tree(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def visible(node: Node) -> bool:
    return not node.has("hidden") and not any(a.has("hidden") for a in node.ancestors())


def form_fields(doc: Node) -> dict[str, str]:
    """What a browser without JavaScript would submit, before the signer types anything."""
    form = doc.by_id("pw-form")
    fields = {}
    # Its own controls, and those that belong to it by their `form` attribute (the token).
    for node in [*form.iter(), *doc.find_all(form="pw-form")]:
        name = node.attrs.get("name")
        if not name:
            continue
        if node.tag == "input" and node.attrs.get("type") == "checkbox":
            if node.has("checked"):
                fields[name] = node.attrs.get("value", "on")
        elif node.tag == "select":
            chosen = [o for o in node.find_all("option") if o.has("selected")]
            fields[name] = chosen[0].attrs["value"] if chosen else ""
        elif node.tag == "textarea":
            fields[name] = node.text()
        else:
            fields[name] = node.attrs.get("value", "")
    return fields


def csp(response: httpx.Response) -> dict[str, str]:
    directives = response.headers["content-security-policy"].split(";")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (x.strip() for x in directives) if d}


def page_data(doc: Node) -> dict[str, object]:
    data: dict[str, object] = json.loads(doc.by_id("pw-data").text())
    return data


def api_count(client: httpx.Client, slug: str = SLUG) -> int:
    count: int = client.get(f"/api/petitions/{slug}").json()["signatures"]
    return count


def sign_json(client: httpx.Client, token: str, slug: str = SLUG) -> httpx.Response:
    return client.post(
        f"/api/petitions/{slug}/signatures", json={"token": token, **live.new_signer()}
    )


def get_page(client: httpx.Client, path: str = PAGE, **params: str) -> tuple[httpx.Response, Node]:
    response = client.get(path, params=params)
    return response, tree(response.text)


# --- The document ------------------------------------------------------------------------------


def test_document_has_the_petition_count_and_a_working_form(client: httpx.Client) -> None:
    response, doc = get_page(client, lang="en")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    texts = EXAMPLE.texts["en"]
    html_el = doc.find("html")
    assert (html_el.attrs["lang"], html_el.attrs["dir"]) == ("en", "ltr")
    assert doc.find("h1").text() == texts.title
    assert doc.find("p", **{"class": "pw-summary"}).text() == texts.summary
    more = doc.find("details", **{"class": "pw-more"})
    assert "Russian LGBT Network is an interregional movement" in more.text()
    assert [t.attrs["datetime"] for t in more.find_all("time")] == ["2022-04-28", "2022-04-21"]
    assert [t.text() for t in more.find_all("time")] == ["April 28, 2022", "April 21, 2022"]
    assert (
        more.find("article", **{"class": "pw-update pw-correction"}).text().startswith("Correction")
    )
    statement = doc.find("details", **{"class": "pw-statement"})
    assert statement.find("summary").text() == "To: the Russian government"
    assert "immediately stop the prosecution" in statement.text()
    assert doc.find(**{"class": "pw-legal"}).text() == texts.legal_notice

    count = api_count(client)
    bar = doc.find(role="progressbar")
    count_text = i18n.catalog("en").plural("signed_count", count)
    assert bar.attrs["aria-valuemin"] == "0"
    assert bar.attrs["aria-valuemax"] == "50000"
    assert bar.attrs["aria-valuenow"] == str(count)
    assert bar.attrs["aria-valuetext"] == f"{count_text}. Goal: 50,000"
    assert doc.by_id("pw-count").text() == f"{count_text} Goal: 50,000"

    form = doc.by_id("pw-form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", SIGN)
    for field in ("name", "email", "country"):
        control = form.find(name=field)
        label = form.find("label", **{"for": control.attrs["id"]})
        assert label.text()
    assert form.find(name="name").has("required") and form.find(name="email").has("required")
    honeypot = form.find(name="website")
    assert honeypot.attrs["tabindex"] == "-1"
    assert any(a.attrs.get("aria-hidden") == "true" for a in honeypot.ancestors())
    consent = form.find("label", **{"for": "pw-c-org"}).text()
    assert consent == "Keep me informed about this and other campaigns by All Out (optional)"
    assert (
        "All Out keeps your name, email and country" in form.find(**{"class": "pw-notice"}).text()
    )
    assert visible(form) and not visible(doc.by_id("pw-thanks"))

    # The token in the document is fresh and works.
    signed = sign_json(client, form_fields(doc)["token"])
    assert signed.status_code == 201
    assert signed.json()["signatures"] == count + 1


def test_document_language_from_data_lang_then_accept_language(client: httpx.Client) -> None:
    russian = client.get(PAGE, headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    asked = client.get(PAGE, params={"lang": "en"}, headers={"Accept-Language": "ru"})
    unknown = client.get(PAGE, params={"lang": "de"}, headers={"Accept-Language": "fr"})
    assert tree(russian.text).find("html").attrs["lang"] == "ru"
    assert tree(asked.text).find("html").attrs["lang"] == "en"
    assert tree(unknown.text).find("html").attrs["lang"] == EXAMPLE.lang


def test_russian_document_is_complete(client: httpx.Client) -> None:
    _, doc = get_page(client, lang="ru")
    texts = EXAMPLE.texts["ru"]
    ru = i18n.catalog("ru")
    assert doc.find("html").attrs["lang"] == "ru"
    assert doc.find("h1").text() == texts.title
    assert doc.find("title").text() == texts.title
    assert doc.find("details", **{"class": "pw-statement"}).find("summary").text() == (
        "Кому: Правительству России"
    )
    dates = [" ".join(ru.date(datetime.date(2022, 4, d)).split()) for d in (28, 21)]
    assert dates == ["28 апреля 2022 г.", "21 апреля 2022 г."]  # CLDR's long date
    assert [t.text() for t in doc.find_all("time")] == dates
    count = api_count(client)
    bar = doc.find(role="progressbar")
    assert bar.attrs["aria-valuetext"] == f"{ru.plural('signed_count', count)}. Цель: 50\u00a0000"
    assert doc.find("label", **{"for": "pw-name"}).text() == "Имя и фамилия"
    assert doc.find("button", **{"class": "pw-submit"}).text() == "Подписать"
    # No interface text of the English catalog is left in what the page shows or says (its
    # text, its script's data, the attributes read out by screen readers).
    data = page_data(doc)
    doc.by_id("pw-data").children.clear()
    # The consent texts are not yet signed off in Russian: each has its English original
    # beside it, marked as English. That is the only English the page may hold.
    originals = doc.find_all(**{"class": "pw-orig"})
    assert len(originals) == 2 and all(o.attrs["lang"] == "en" for o in originals)
    assert originals[-1].text() == i18n.catalog("en")("consent_notice", organiser="All Out")
    for original in originals:
        original.children.clear()
    messages = data["messages"]
    assert isinstance(messages, dict)
    said = [doc.text(), *(json.dumps(v, ensure_ascii=False) for v in messages.values())] + [
        value
        for node in doc.iter()
        for name, value in node.attrs.items()
        if name in ("aria-label", "aria-valuetext", "title", "placeholder", "value", "alt")
    ]
    english = i18n.catalog("en").messages
    for key, value in english.items():
        forms = value.values() if isinstance(value, dict) else [value]
        for text in forms:
            for fragment in re.split(r"\{\w+\}", text):
                if len(fragment.strip()) >= 8:
                    assert not any(fragment.strip() in x for x in said), (key, fragment)
    # The script's messages are Russian, with every plural form it needs.
    assert set(messages["signed_count"]) >= {"one", "few", "many"}
    assert messages["sign_button"] == "Подписать"


def test_security_headers_and_content_security_policy(client: httpx.Client) -> None:
    response, doc = get_page(client)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["form-action"] == "'self'"
    assert policy["base-uri"] == "'none'"
    assert policy["frame-ancestors"] == "*"
    assert "unsafe" not in response.headers["content-security-policy"]
    # The one inline style is allowed by its hash; nothing else inline would run or apply.
    (style,) = doc.find_all("style")
    digest = base64.b64encode(hashlib.sha256(style.text().encode()).digest()).decode()
    assert policy["style-src"] == f"'self' 'sha256-{digest}'"
    scripts = doc.find_all("script")
    assert [s.attrs.get("src", "")[:15] for s in scripts] == ["/widget/assets/", ""]
    assert scripts[1].attrs["type"] == "application/json"  # data, never executed
    for node in doc.iter():
        assert not any(name.startswith("on") for name in node.attrs), node.tag
        assert "style" not in node.attrs, node.tag


def test_frame_ancestors_can_be_limited_by_the_petition(client: httpx.Client) -> None:
    response = client.get("/widget/listed-sites")
    assert response.status_code == 200
    assert csp(response)["frame-ancestors"] == (
        "'self' https://partner.example https://*.allies.example"
    )


@pytest.mark.parametrize(
    ("accent", "style"),
    [
        ("#ffeb3b", ":root{--accent:#ffeb3b;--on-accent:#000}"),
        ("#123", ":root{--accent:#112233;--on-accent:#fff}"),
        ("c0392b", ":root{--accent:#c0392b;--on-accent:#fff}"),
        ("red;}</style><script>alert(1)</script>", ""),
        ("url(https://evil.example/x)", ""),
    ],
)
def test_accent_colour_is_checked_and_hashed(client: httpx.Client, accent: str, style: str) -> None:
    response, doc = get_page(client, accent=accent)
    (inline,) = doc.find_all("style")
    assert inline.text().startswith(style + ".pw-fill{width:")
    digest = base64.b64encode(hashlib.sha256(inline.text().encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp(response)["style-src"]
    assert "alert(1)" not in response.text and "evil.example" not in response.text


def test_frame_parameters_are_checked(client: httpx.Client) -> None:
    _, good = get_page(client, origin="https://partner.example:8443", frame="abc123")
    assert page_data(good)["parent_origin"] == "https://partner.example:8443"
    assert good.by_id("pw-frame").attrs["value"] == "abc123"
    _, bad = get_page(client, origin="javascript:alert(1)//", frame='"><script>')
    assert page_data(bad)["parent_origin"] == ""
    assert bad.by_id("pw-frame").attrs["value"] == ""


def test_unknown_slug_is_a_plain_404(client: httpx.Client) -> None:
    for path in ("/widget/no-such-petition", "/widget/no-such-petition/count"):
        response = client.get(path, params={"lang": "ru"})
        assert response.status_code == 404
        assert response.headers["x-content-type-options"] == "nosniff"
        assert csp(response)["default-src"] == "'none'"
        assert i18n.catalog("ru")("error_not_found") in response.text


def test_closed_petition_shows_no_form(client: httpx.Client) -> None:
    response, doc = get_page(client, "/widget/closed-one")
    assert response.status_code == 200
    assert doc.find(**{"class": "pw-closed"}).text() == i18n.catalog("en")("closed")
    assert not doc.find_all("form")


# --- Loader and assets -------------------------------------------------------------------------


def raw_get(client: httpx.Client, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """A response and its body exactly as sent (still compressed)."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def served(name: str) -> bytes:
    """A file of widget/ as it is served: without its comment lines."""
    return assets.served_text((bundle.WIDGET_DIR / name).read_text(), Path(name).suffix).encode()


def test_served_scripts_lose_comments_and_indentation_but_no_code() -> None:
    script = (
        "// a whole-line comment\n"
        "function f(a) {\n"
        '  var u = "https://example.org/"; // a comment after code\n'
        '  var s = "a; // not a comment";\n'
        "  if (a) // said after a condition\n"
        "    return u + s; /* kept: a block comment after code */\n"
        "}\n"
    )
    assert assets.served_text(script, ".js") == (
        "function f(a) {\n"
        'var u = "https://example.org/";\n'
        'var s = "a; // not a comment";\n'
        "if (a)\n"
        "return u + s; /* kept: a block comment after code */\n"
        "}\n"
    )
    # A stylesheet keeps its lines as they are, but for its comment-only ones.
    assert assets.served_text("/* x */\n  a { b: c; }\n", ".css") == "  a { b: c; }\n"


def test_loader_is_cached_briefly_compressed_and_small(client: httpx.Client) -> None:
    source = served("embed.js")
    response, raw = raw_get(client, "/embed.js", **{"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == f"public, max-age={widget.LOADER_MAX_AGE}"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert gzip.decompress(raw) == source
    assert len(raw) <= 2048
    again = client.get("/embed.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    # An IIFE in strict mode: it declares nothing at the top level of the host page.
    code = re.sub(rb"/\*.*?\*/", b"", source, flags=re.S).strip()
    assert code.startswith(b'(function () {\n"use strict";') and code.endswith(b"})();")


def test_assets_are_fingerprinted_immutable_and_compressed(client: httpx.Client) -> None:
    _, doc = get_page(client)
    urls = [
        doc.find("link", rel="stylesheet").attrs["href"],
        doc.find_all("script")[0].attrs["src"],
    ]
    for url in urls:
        name = url.rsplit("/", 1)[1]
        stem, digest, suffix = name.split(".")
        source = served(f"{stem}.{suffix}")
        assert digest == hashlib.sha256(source).hexdigest()[:10]
        response, raw = raw_get(client, url, **{"Accept-Encoding": "gzip, br"})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert gzip.decompress(raw) == source
        plain, raw_plain = raw_get(client, url, **{"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and raw_plain == source
        again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        stale = url.replace(digest, "0" * len(digest))
        assert client.get(stale).status_code == 404


# --- Live count ----------------------------------------------------------------------------------


def test_live_count_is_tiny_and_304_until_someone_signs(client: httpx.Client) -> None:
    _, doc = get_page(client)
    etag = str(page_data(doc)["count_etag"])
    rendered = client.get(f"{PAGE}/count", headers={"If-None-Match": etag})
    assert rendered.status_code == 304  # a widget's first poll, when nobody signed meanwhile
    first = client.get(f"{PAGE}/count")
    assert first.status_code == 200
    assert first.json() == {"signatures": api_count(client), "goal": 50000, "status": "open"}
    assert len(first.content) < 100
    assert first.headers["cache-control"].startswith(f"public, max-age={widget.COUNT_MAX_AGE}, ")
    etag = first.headers["etag"]
    unchanged = client.get(f"{PAGE}/count", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    token = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
    assert sign_json(client, token).status_code == 201
    moved = client.get(f"{PAGE}/count", headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.json()["signatures"] == first.json()["signatures"] + 1
    assert moved.headers["etag"] != etag


def test_live_count_answers_a_cross_origin_poll_s_preflight(client: httpx.Client) -> None:
    """A partner's page polling the count with `If-None-Match` sends a non-simple header: its
    browser asks with `OPTIONS` first, and must be allowed that header."""
    asked = {
        "Origin": "https://partner.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match",
    }
    response = client.options(f"{PAGE}/count", headers=asked)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower().replace(" ", "")
    assert "if-none-match" in allowed.split(",")


# --- Without JavaScript ----------------------------------------------------------------------


def post_form(client: httpx.Client, fields: dict[str, str]) -> tuple[httpx.Response, Node]:
    """The POST's answer, and the page shown: its own, or, after a `303`, the page it leads to."""
    response = client.post(SIGN, data=fields, headers=HTML)
    if response.status_code == 303:
        location = response.headers["location"]
        for typed in (fields.get("email"), fields.get("name")):
            assert not typed or urllib.parse.quote_plus(typed) not in location
        assert "withdraw" not in location and response.content == b""
        page = client.get(location, headers=HTML)
        assert page.status_code == 200
        return response, tree(page.text)
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors" in response.headers["content-security-policy"]
    return response, tree(response.text)


def test_form_without_javascript_signs_and_thanks(client: httpx.Client) -> None:
    before = api_count(client)
    _, doc = get_page(
        client, partner=PARTNER_CODE, accent="#5b2a86", origin="https://partner.example", frame="f1"
    )
    fields = {**form_fields(doc), **live.new_signer(), "country": "DE"}
    fields["consent_partner"] = "on"
    response, answer = post_form(client, fields)
    assert response.status_code == 303  # to the thank-you page's own address
    thanks = answer.by_id("pw-thanks")
    assert visible(thanks) and not visible(answer.by_id("pw-form"))
    assert thanks.find("h2").text() == "Thank you for signing!"
    assert answer.find(role="progressbar").attrs["aria-valuenow"] == str(before + 1)
    share = answer.by_id("pw-share-url").attrs["value"]
    assert share.endswith(f"/p/{SLUG}?partner={PARTNER_CODE}")  # the share page
    # (Mastodon's link is made by the script, from the server the signer names.)
    hrefs = [a.attrs["href"] for a in thanks.find_all("a") if "href" in a.attrs]
    assert hrefs[0].startswith("mailto:?subject=")
    assert all(urllib.parse.quote(share, safe="") in h for h in hrefs[1:-1])
    # The page has an address of its own, which must not hold the withdrawal link.
    assert not visible(answer.find(**{"class": "pw-withdraw"})) and hrefs[-1] == ""
    # The frame keeps its look and its height messages across the round trip.
    assert answer.find("style").text().startswith(":root{--accent:#5b2a86;")
    assert page_data(answer)["parent_origin"] == "https://partner.example"
    assert api_count(client) == before + 1


def test_form_errors_keep_the_input_and_renew_the_token(client: httpx.Client) -> None:
    before = api_count(client)
    _, doc = get_page(client, partner=PARTNER_CODE)
    first_token = form_fields(doc)["token"]
    person = live.new_signer()
    typed = {
        **form_fields(doc),
        "name": "",
        "email": "not-an-email",
        "country": "UA",
        "consent_organiser": "on",
        "consent_partner": "on",
    }
    response, answer = post_form(client, typed)
    assert response.status_code == 422
    assert answer.by_id("pw-alert").text() == "Please check the highlighted fields."
    name, email = answer.by_id("pw-name"), answer.by_id("pw-email")
    assert name.attrs["aria-invalid"] == "true" and email.attrs["aria-invalid"] == "true"
    assert answer.by_id("pw-name-err").text() == "This field is required."
    assert answer.by_id("pw-email-err").text().startswith("Please enter a valid email address")
    assert "pw-email-err" in email.attrs["aria-describedby"].split()
    assert email.attrs["value"] == "not-an-email"
    kept = form_fields(answer)
    assert kept["country"] == "UA"
    assert kept["consent_organiser"] == "on" and kept["consent_partner"] == "on"
    assert answer.by_id("pw-country").attrs.get("aria-invalid") is None
    assert kept["token"] != first_token
    # The renewed form signs, still for the partner it came through.
    response, answer = post_form(client, {**kept, **person})
    assert response.status_code == 303
    assert api_count(client) == before + 1


def test_used_form_comes_back_with_the_input_and_a_fresh_token(client: httpx.Client) -> None:
    _, doc = get_page(client, lang="ru")
    fields = form_fields(doc)
    assert post_form(client, {**fields, **live.new_signer()})[0].status_code == 303
    second = live.new_signer()
    response, answer = post_form(client, {**fields, **second})
    assert response.status_code == 409
    assert answer.find("html").attrs["lang"] == "ru"
    assert answer.by_id("pw-alert").text() == i18n.catalog("ru")("error_token_used")
    assert answer.by_id("pw-name").attrs["value"] == second["name"]
    assert answer.by_id("pw-email").attrs["value"] == second["email"]
    renewed = form_fields(answer)
    assert renewed["token"] != fields["token"]
    assert post_form(client, renewed)[0].status_code == 303


def test_rate_limited_form_comes_back_with_the_input(tmp_path: Path) -> None:
    url = backends.sqlite_url(tmp_path)
    live.prepare(url)
    with (
        live.LiveServer(url, tmp_path, rate_sign_per_minute=1) as srv,
        httpx.Client(base_url=srv.base_url) as client,
    ):
        _, doc = get_page(client)
        assert post_form(client, {**form_fields(doc), **live.new_signer()})[0].status_code == 303
        person = live.new_signer()
        response, answer = post_form(client, {**form_fields(doc), **person, "country": "UA"})
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1  # as the JSON API says it
        assert answer.by_id("pw-alert").text() == i18n.catalog("en")("error_rate_limited")
        kept = form_fields(answer)
        assert (kept["name"], kept["email"], kept["country"]) == (
            person["name"],
            person["email"],
            "UA",
        )


def test_russian_form_errors_are_in_russian(client: httpx.Client) -> None:
    _, doc = get_page(client, lang="ru")
    response, answer = post_form(client, {**form_fields(doc), "name": "", "email": ""})
    assert response.status_code == 422
    assert answer.by_id("pw-name-err").text() == "Это поле нужно заполнить."
    assert answer.by_id("pw-alert").text() == "Проверьте отмеченные поля."


# --- Partners ------------------------------------------------------------------------------------


def unknown_codes(server: live.LiveServer) -> dict[str, int]:
    async def read() -> dict[str, int]:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            found = await storage.unknown_partner_activity(pid)
            return {u.code: u.signatures for u in found}
        finally:
            await storage.disconnect()

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("code", "recorded"), [("Mistyped-Code", "mistyped-code"), ("<b>x</b>", "(invalid)")]
)
def test_unknown_partner_code_still_renders_counts_and_is_recorded(
    server: live.LiveServer, client: httpx.Client, code: str, recorded: str
) -> None:
    before_count, before_codes = api_count(client), unknown_codes(server)
    response, doc = get_page(client, partner=code)
    assert response.status_code == 200
    assert "<b>x" not in response.text
    assert not doc.find_all(id="pw-c-partner")  # no partner to consent to
    fields = {**form_fields(doc), **live.new_signer()}
    assert post_form(client, fields)[0].status_code == 303
    assert api_count(client) == before_count + 1
    assert unknown_codes(server).get(recorded, 0) == before_codes.get(recorded, 0) + 1


def test_known_partner_is_offered_with_its_name_escaped(client: httpx.Client) -> None:
    response, doc = get_page(client, partner=PARTNER_CODE.upper())
    label = doc.find("label", **{"for": "pw-c-partner"})
    assert label.text() == f"Keep me informed by {PARTNER_NAME} (optional)"
    assert '<script>alert("partner")' not in response.text
    assert len(doc.find_all("script")) == 2


# --- Hostile petition texts --------------------------------------------------------------------

_FOREIGN_TAGS = {"img", "svg", "math", "iframe", "object", "embed", "base", "video", "audio"}


def assert_inert(root: Node) -> None:
    """No foreign element, event handler or script URL anywhere under `root`."""
    for node in root.iter():
        assert node.tag not in _FOREIGN_TAGS, node.tag
        assert not any(name.startswith("on") for name in node.attrs), (node.tag, node.attrs)
        for attr in ("href", "src", "action", "data", "formaction"):
            value = re.sub(r"[\s\x00-\x1f]", "", node.attrs.get(attr, "")).lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), (node.tag, attr)


def test_hostile_signer_input_comes_back_as_text(client: httpx.Client) -> None:
    """Without JavaScript, a refused form is echoed back with what the signer typed: every
    field that reaches the page, with script, event-handler, URL and SVG payloads."""
    _, doc = get_page(client, "/widget/hostile")
    typed = {
        "name": '"><script>alert(1)</script><svg onload=alert(2)>',
        "email": '"onfocus="alert(3)" autofocus x="@example.org',  # invalid: the form returns
        "comment": "</textarea><img src=x onerror=alert(4)><a href=javascript:alert(5)>x</a>",
    }
    response = client.post(
        "/api/petitions/hostile/signatures", data={**form_fields(doc), **typed}, headers=HTML
    )
    assert response.status_code == 422
    answer = tree(response.text)
    assert_inert(answer.find("html"))
    assert len(answer.find_all("script")) == 2 and len(answer.find_all("textarea")) == 1
    assert answer.by_id("pw-name").attrs["value"] == typed["name"]
    assert answer.by_id("pw-email").attrs["value"] == typed["email"]
    assert answer.by_id("pw-comment").text() == typed["comment"]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_hostile_petition_texts_are_shown_as_text(client: httpx.Client, lang: str) -> None:
    response = client.get("/widget/hostile", params={"lang": lang})
    assert response.status_code == 200
    doc = tree(response.text)
    html_el = doc.find("html")
    # Only our own elements: one stylesheet, one inline style, our script and our data.
    assert [s.attrs.get("src", "")[:15] for s in doc.find_all("script")] == ["/widget/assets/", ""]
    assert len(doc.find_all("style")) == 1 and len(doc.find_all("link")) == 1
    assert len(doc.find_all("form")) == 1 and len(doc.find_all("details")) == 2
    assert len(doc.find_all("body")) == 1 and len(doc.find_all("meta")) == 3
    assert_inert(html_el)
    # The payloads are visible as the text they are.
    title = doc.find("h1").text()
    assert title.startswith('<script>alert("')
    assert doc.find("title").text() == title
    assert "<img src=x onerror=alert(1" in doc.find(**{"class": "pw-summary"}).text()
    if lang == "en":
        assert "<style>*{display:none}</style>" in doc.find(**{"class": "pw-legal"}).text()
        consent = doc.find("label", **{"for": "pw-c-org"}).text()
        assert consent.startswith('Keep me informed about this and other campaigns by "><svg')
        (link,) = doc.find("details", **{"class": "pw-statement"}).find_all("a")
        assert link.attrs["href"] == "https://example.org/"
        assert link.attrs["rel"] == "noopener noreferrer nofollow"
    # The script's data cannot end its script element early.
    data = response.text.split('id="pw-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and json.loads(data)["lang"] == lang


# --- Weight --------------------------------------------------------------------------------------


def test_weight_budget(client: httpx.Client) -> None:
    """The loader is at most 2 KB gzipped; everything the frame needs to first render is at most
    15 KB gzipped, in at most 3 requests (document, stylesheet, script)."""
    gz = {"Accept-Encoding": "gzip"}
    loader = len(raw_get(client, "/embed.js", **gz)[1])
    sizes = {}
    forms = {"en": f"{PAGE}?lang=en", "ru": f"{PAGE}?lang=ru",
             "ru, name to target": f"/widget/{NAMED.slug}?lang=ru"}  # fmt: skip
    for lang, form in forms.items():
        response, raw = raw_get(client, f"{form}&partner={PARTNER_CODE}", **gz)
        assert response.headers["content-encoding"] == "gzip"
        doc = tree(gzip.decompress(raw).decode())
        assert bool(doc.find_all(id="pw-c-target")) == form.startswith(f"/widget/{NAMED.slug}")
        subresources = [
            n.attrs.get("src") or n.attrs.get("href")
            for n in doc.iter()
            if (n.tag == "script" and n.has("src"))
            or (n.tag == "link" and n.has("href"))
            or n.tag in ("img", "iframe", "video", "audio", "source", "object")
        ]
        assert len(subresources) == 2, subresources
        assert not any("font" in str(s) for s in subresources)
        assets = [len(raw_get(client, str(url), **gz)[1]) for url in subresources]
        sizes[lang] = (len(raw), *assets)
        assert 1 + len(subresources) <= 3
        assert sum(sizes[lang]) <= 15 * 1024, sizes
    assert loader <= 2 * 1024
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "widget-weight.json").write_text(
        json.dumps({"embed.js": loader, "first render (document, css, js)": sizes}, indent=2)
    )


# --- Styles: contrast and direction --------------------------------------------------------------


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        digits = colour.lstrip("#")
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour_schemes() -> dict[str, dict[str, str]]:
    """The custom properties of widget.css, light and dark."""
    css = (bundle.WIDGET_DIR / "widget.css").read_text()
    light_block = re.search(r":root \{(.*?)\}", css, re.S)
    assert light_block

    def variables(block: str) -> dict[str, str]:
        return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6});", block))

    light = variables(light_block[1])
    assert set(widget.DARK_PALETTE) == set(light)  # the dark theme sets every colour
    return {"light": light, "dark": widget.DARK_PALETTE}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colours_meet_wcag_aa(scheme: str) -> None:
    c = colour_schemes()[scheme]
    text_pairs = [
        ("fg", "bg"), ("muted", "bg"), ("fg", "field"), ("muted", "field"), ("error", "bg"),
        ("ok", "bg"), ("on-accent", "accent"),
    ]  # fmt: skip
    for fg, bg in text_pairs:  # text: 4.5:1
        assert contrast(c[fg], c[bg]) >= 4.5, (scheme, fg, bg)
    for fg, bg in [("focus", "bg"), ("muted", "field"), ("accent", "track"), ("accent", "bg")]:
        assert contrast(c[fg], c[bg]) >= 3, (scheme, fg, bg)  # focus ring, borders, bar: 3:1


def test_any_accent_keeps_the_button_readable() -> None:
    for value in range(0, 0x1000000, 0x010307):
        accent, on_accent = widget.accent_colours(f"#{value:06x}") or ("", "")
        assert contrast(accent, on_accent) >= 4.5, accent


def test_styles_use_logical_directions_only() -> None:
    """Right-to-left ready: no physical left/right in the widget's styles."""
    css = (bundle.WIDGET_DIR / "widget.css").read_text()
    physical = re.findall(
        r"(?:margin|padding|border|inset)-(?:left|right)|\b(?:left|right)\s*:|"
        r"text-align:\s*(?:left|right)|float:\s*(?:left|right)",
        css,
    )
    assert physical == []


# --- The example partner page ------------------------------------------------------------------


def test_example_partner_page_shows_the_snippets_the_generator_makes() -> None:
    """ "Exactly as partners paste it": the page's snippets are the generator's for the demo's
    partner (its consent box in the placeholder), so they cannot drift from it."""
    example = (bundle.EXAMPLES_DIR / "partner-site.html").read_text()
    code, name = DEMO_PARTNER
    petition = petitions.example()
    for lang in ("en", "ru"):
        space = Space.estimate(petition, lang, partner=name)
        made = embed(demo.EXAMPLE_ORIGIN, SLUG, code, lang, "#5b2a86", space=space)
        assert made in re.sub(r"\n[ ]+", "\n", example), lang  # as indented in the page


def test_the_partners_guide_shows_the_snippet_the_generator_makes() -> None:
    """docs/partners.md's snippet is the generator's for a registered partner without
    `data-lang` (the tallest language, the partner's box included), and says no other height."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "partners.md").read_text()
    petition = petitions.example()
    langs = [lang for lang in sorted(i18n.LANGUAGES) if lang in petition.languages]
    space = Space.tallest(petition, langs, partner="Your Organisation")
    assert embed("https://petitions.example.org", SLUG, "your-code", space=space) in guide
    assert f"{NOSCRIPT_HEIGHT:,} px" in guide
    assert not re.search(r"\b(900|1,?000|1,?200|1,?400) ?px", guide)


def test_example_partner_page_embeds_the_snippet_and_loads_nothing_else() -> None:
    page = demo.partner_page("https://petitions.example.net/")
    assert demo.EXAMPLE_ORIGIN not in page
    doc = tree(page)
    snippets = [s for s in doc.find_all("script") if s.has("src")]
    assert len(snippets) == 2
    for snippet in snippets:
        assert snippet.attrs["src"] == "https://petitions.example.net/embed.js"
        assert snippet.has("async") and snippet.attrs["data-petition"] == SLUG
    assert {s.attrs["data-lang"] for s in snippets} == {"en", "ru"}
    fallbacks = doc.find_all("noscript")
    assert len(fallbacks) == 2
    for fallback in fallbacks:
        (target,) = [n for n in fallback.iter() if n.tag in ("a", "iframe")]
        url = target.attrs.get("href") or target.attrs["src"]
        assert url.startswith(f"https://petitions.example.net/widget/{SLUG}?partner=")
    # Self-contained: anything it loads comes from the widget's server or is inline.
    for node in doc.iter():
        for attr in ("src", "href"):
            value = node.attrs.get(attr, "")
            if node.tag in ("script", "link", "img", "iframe") and value:
                assert value.startswith(("https://petitions.example.net/", "data:")), value


def test_docs_state_the_limits_the_code_uses() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "widget.md").read_text()
    assert f"every {widget.POLL_SECONDS} seconds (`POLL_SECONDS`)" in docs
    assert (
        f"`Cache-Control: public, max-age={widget.COUNT_MAX_AGE}, "
        f"stale-while-revalidate={widget.COUNT_STALE_WHILE_REVALIDATE}, "
        f"stale-if-error={widget.COUNT_STALE_IF_ERROR}`" in docs
    )
    assert f"`Cache-Control: public, max-age={widget.LOADER_MAX_AGE}`" in docs
    loader = (bundle.WIDGET_DIR / "embed.js").read_text()
    assert "Math.max(200, Math.min(20000," in loader and "200-20,000 px" in docs
    assert "reserved >= 200 ? reserved : 640" in loader and "640 px" in docs
    assert "slice(0, 200)" in loader and "at most 200 characters" in docs
    assert "from 200 px tall" in docs and "ignored: 640 px" in docs  # the placeholder's floor
    script = (bundle.WIDGET_DIR / "widget.js").read_text()
    assert r"/^[a-z0-9-]+(\.[a-z0-9-]+)+$/" in script and "a plain DNS name" in docs
    assert f"{widget._MAX_STENCILS:,} cached, emptied when full" in docs
    assert f"{NOSCRIPT_HEIGHT:,} px" in docs  # the one <noscript> height, said once
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = (bundle.EXAMPLES_DIR / "partner-site.html").read_text()
    for text in (docs, readme, example):  # every <noscript> iframe shown has that height
        heights = re.findall(r"<noscript><iframe[^>]*?height:(\d+)px", text, re.S)
        assert heights and set(heights) == {str(NOSCRIPT_HEIGHT)}
