"""Sharing and what follows signing, over HTTP on a live server, on both engines: the share
page `/p/{slug}` and its link-preview tags (English and Russian), the widget's share links, the
look options, and the `[after_sign] url` "Continue" link on a thank-you and on the confirmation
page."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import html.parser
import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.domain import access_keys
from server.domain.petitions import EmbedConfig, parse
from server.domain.placeholder import Space
from server.store.storage import Storage
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
IMAGE = "https://cdn.example.org/card.png"
AFTER = "https://donate.example.org/give?from=petition"
CONFIG = EmbedConfig("friends-dark", "friends", "ru", "dark", "#c0392b", True)
EXAMPLE = dataclasses.replace(
    petitions.example(), share_image=IMAGE, after_sign_url=AFTER, embed_configs=(CONFIG,)
)
HTML = {"Accept": "text/html"}
SITES = {"Telegram", "WhatsApp", "VK", "X", "Facebook", "Bluesky"}  # Mastodon: by the script


def petition(slug: str, extra: str = "", confirmation: str = "none") -> Any:
    return parse(f"""
slug = "{slug}"
lang = "en"
goal = 1000
title = "Title of {slug}"
summary = "Summary of {slug}"
target = "The council"
statement = "We ask the council."
{extra}
[signing]
confirmation = "{confirmation}"
""")


OWNER = access_keys.generate(access_keys.OWNER)
OWN_PAGE = petition("own-page", 'share_url = "https://campaign.example.org/sign"')
BY_MAIL = petition("by-mail", f'[after_sign]\nurl = "{AFTER}"\n', confirmation="email")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("sharing")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [EXAMPLE, OWN_PAGE, BY_MAIL])

    async def add_partner_and_owner() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            await storage.add_partner(pid, "friends", "Friends")
            await storage.add_access_key(OWNER.id, access_keys.OWNER, OWNER.digest, "test")
        finally:
            await storage.disconnect()

    asyncio.run(add_partner_and_owner())
    server = live.LiveServer(
        url, folder, SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}", MAIL_FROM="p@example.org"
    )
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


class Tags(html.parser.HTMLParser):
    """The meta tags, links, scripts and iframes of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "meta" and ("property" in values or "name" in values):
            self.meta[values.get("property") or values["name"]] = values.get("content", "")


def share_page(client: httpx.Client, **params: str) -> tuple[httpx.Response, Tags]:
    response = client.get(f"/p/{SLUG}", params=params)
    assert response.status_code == 200, response.text
    return response, Tags(response.text)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_share_page_has_link_preview_tags(
    client: httpx.Client, server: live.LiveServer, lang: str
) -> None:
    response, page = share_page(client, partner="FRIENDS", lang=lang)
    texts = EXAMPLE.texts[lang]
    own = f"{server.base_url}/p/{SLUG}?partner=friends&lang={lang}"
    assert page.meta["og:title"] == texts.title == page.meta["twitter:title"]
    assert page.meta["og:description"] == texts.summary == page.meta["twitter:description"]
    assert page.meta["og:url"] == own  # the partner code kept: a share stays attributed
    # The contract: share_image is named in og:image only (X's cards fall back to it).
    assert page.meta["og:image"] == IMAGE and "twitter:image" not in page.meta
    assert page.meta["twitter:card"] == "summary_large_image"
    assert page.meta["og:locale"] == {"en": "en_US", "ru": "ru_RU"}[lang]
    assert re.search(rf'<html lang="{lang}"', response.text)
    assert f"<title>{texts.title}</title>" in response.text.replace("&#34;", '"')
    # It shows the widget, with the partner's code, through the loader.
    (script,) = [a for t, a in page.elements if t == "script"]
    assert script["src"] == f"{server.base_url}/embed.js"
    assert (script["data-petition"], script["data-partner"]) == (SLUG, "friends")
    assert script["data-lang"] == lang


def test_share_page_loads_nothing_from_elsewhere(client: httpx.Client) -> None:
    response, page = share_page(client)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-src 'self'" in csp
    assert "img-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    # The image is named in its tags only: no element of the page loads it.
    loaded = [a.get("src", "") + a.get("href", "") for t, a in page.elements if t != "meta"]
    assert not [u for u in loaded if "cdn.example.org" in u]
    assert not [a for t, a in page.elements if "style" in a]  # the CSP would refuse it
    # Without a partner or a language the tags are the petition's own language's.
    assert page.meta["og:url"].endswith(f"/p/{SLUG}")
    assert page.meta["og:title"] == EXAMPLE.texts[EXAMPLE.lang].title


def test_share_page_ignores_malformed_options(client: httpx.Client) -> None:
    _, page = share_page(client, partner='"><script>', lang="zz")
    assert page.meta["og:url"].endswith(f"/p/{SLUG}")
    assert client.get("/p/no-such-petition").status_code == 404
    _, plain = share_page(client)
    assert "og:image" in plain.meta
    other = Tags(client.get("/p/own-page").text)
    assert "og:image" not in other.meta and other.meta["twitter:card"] == "summary"


def widget_share_links(client: httpx.Client, slug: str, **params: str) -> dict[str, str]:
    page = Tags(client.get(f"/widget/{slug}", params=params).text)
    links = {}
    for tag, attrs in page.elements:
        if tag == "input" and attrs.get("id") == "pw-share-url":
            links["url"] = attrs["value"]
        if tag == "a" and attrs.get("href", "").startswith("https://"):
            links[urllib.parse.urlsplit(attrs["href"]).hostname or ""] = attrs["href"]
    return links


def test_widget_share_links_point_to_the_share_page_with_the_partner(
    client: httpx.Client, server: live.LiveServer
) -> None:
    links = widget_share_links(client, SLUG, partner="friends", lang="en")
    assert links["url"] == f"{server.base_url}/p/{SLUG}?partner=friends"
    quoted = urllib.parse.quote(links["url"], safe="")
    assert quoted in links["t.me"] and quoted in links["vk.com"] and quoted in links["bsky.app"]
    russian = widget_share_links(client, SLUG, partner="friends", lang="ru")
    assert russian["url"] == f"{server.base_url}/p/{SLUG}?partner=friends&lang=ru"
    # A malformed code attributes nothing: the link is the plain share page, not one carrying
    # the "(invalid)" the widget records.
    assert widget_share_links(client, SLUG, partner="bad!!code")["url"] == (
        f"{server.base_url}/p/{SLUG}"
    )
    # A petition's own share_url still wins.
    assert widget_share_links(client, "own-page")["url"] == "https://campaign.example.org/sign"


def site_order(client: httpx.Client, lang: str) -> list[str]:
    page = client.get(f"/widget/{SLUG}", params={"lang": lang}).text
    share = page[page.index('class="pw-share"') : page.index("</ul>", page.index('"pw-share"'))]
    return [n for n in re.findall(r'rel="noopener noreferrer">([^<]+)</a>', share) if n in SITES]


def test_share_step_offers_every_site_in_the_language_s_order(client: httpx.Client) -> None:
    english, russian = site_order(client, "en"), site_order(client, "ru")
    assert set(english) == set(russian) == SITES
    assert russian[:2] == ["VK", "Telegram"]
    assert english[0] == "WhatsApp"
    page = client.get(f"/widget/{SLUG}", params={"lang": "ru"}).text
    assert 'class="pw-masto"' in page and 'class="pw-native"' in page  # shown by the script
    assert "Если поделиться в соцсети, ваш аккаунт там будет связан с этой петицией." in page


@pytest.mark.parametrize(
    ("params", "attributes"),
    [
        ({}, ("light", "full", "solid")),
        ({"theme": "dark", "layout": "compact", "background": "transparent"},
         ("dark", "compact", "transparent")),
        ({"theme": "auto"}, ("auto", "full", "solid")),
        ({"theme": "purple", "layout": "tiny", "background": "red"}, ("light", "full", "solid")),
    ],
)  # fmt: skip
def test_look_options(
    client: httpx.Client, params: dict[str, str], attributes: tuple[str, ...]
) -> None:
    page = client.get(f"/widget/{SLUG}", params=params).text
    found = re.search(
        r'<html [^>]*data-theme="(\w+)" data-layout="(\w+)" data-background="(\w+)"', page
    )
    assert found and found.groups() == attributes
    # A no-JavaScript post keeps the look, like the accent.
    for name, value in params.items():
        kept = f'<input type="hidden" name="{name}" value="{value}">' in page
        assert kept == (value in attributes), name


def test_thank_you_offers_continue_in_the_top_window(client: httpx.Client) -> None:
    token = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
    answer = client.post(
        f"/api/petitions/{SLUG}/signatures",
        data={"token": token, **live.new_signer()},
        headers=HTML,
    )
    assert answer.status_code == 303  # to the thank-you page of its own (Post/Redirect/Get)
    answer = client.get(answer.headers["location"])
    assert answer.status_code == 200
    (link,) = [a for t, a in Tags(answer.text).elements if t == "a" and a.get("href") == AFTER]
    assert (link["target"], link["rel"]) == ("_top", "noopener")
    assert ">Continue</a>" in answer.text
    # The script's thank-you is in every document, so the link is too.
    assert (
        f'href="{AFTER.replace("&", "&amp;")}" target="_top"' in client.get(f"/widget/{SLUG}").text
    )


def test_confirmation_page_offers_continue(client: httpx.Client, server: live.LiveServer) -> None:
    token = client.get("/api/petitions/by-mail/token").json()["token"]
    signer = live.new_signer()
    answer = client.post("/api/petitions/by-mail/signatures", json={"token": token, **signer})
    assert answer.status_code == 202

    async def read() -> list[str]:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            rows = await storage.database.fetch_all("SELECT payload FROM outbox ORDER BY id")
            return [str(r[0]) for r in rows]
        finally:
            await storage.disconnect()

    mails = [json.loads(p) for p in asyncio.run(read())]
    opened = [live.opened(m) for m in mails]  # the tokens are sealed with the address
    (mail,) = [m for m in opened if m["to"].lower() == signer["email"].lower()]
    page = client.get(f"/confirm/{mail['confirm']}")
    assert AFTER not in page.text.replace("&amp;", "&")  # only once the signature counts
    confirmed = client.post(f"/confirm/{mail['confirm']}")
    assert confirmed.status_code == 200
    (link,) = [a for t, a in Tags(confirmed.text).elements if t == "a" and a.get("href") == AFTER]
    assert (link["target"], link["rel"]) == ("_top", "noopener")


def test_the_generator_offers_the_named_configurations(server: live.LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as owner:
        assert owner.post("/admin/login", data={"key": OWNER.text}).status_code == 303
        page = owner.get(f"/admin/petitions/{SLUG}")
        assert '<option value="friends-dark" data-partner="friends"' in page.text
        chosen = owner.get(f"/admin/petitions/{SLUG}", params={"config": "friends-dark"}).text
    text = html.unescape(re.search(r'id="snippet-text"[^>]*>(.*?)</textarea>', chosen, re.S)[1])  # type: ignore[index]
    assert text.startswith('<div class="petition-widget-space"')
    assert (
        'data-partner="friends" data-lang="ru" data-accent="#c0392b" data-theme="dark" '
        'data-layout="compact"' in text
    )
    preview = f"/widget/{SLUG}?partner=friends&amp;lang=ru&amp;accent=%23c0392b&amp;theme=dark"
    assert f'src="{preview}&amp;layout=compact&amp;preview=1"' in chosen


def test_a_registered_partners_snippets_reserve_its_consent_box(
    server: live.LiveServer, client: httpx.Client
) -> None:
    """The widget adds "Keep me informed by Friends" for a registered partner's code: the share
    page's and the generator's placeholders reserve it (an unknown code adds no box)."""
    plain, theirs = Space.estimate(EXAMPLE, "ru"), Space.estimate(EXAMPLE, "ru", partner="Friends")
    assert theirs.narrow > plain.narrow
    shared = client.get(f"/p/{SLUG}", params={"partner": "friends", "lang": "ru"}).text
    assert f"min-height:{theirs.narrow}px" in shared
    unknown = client.get(f"/p/{SLUG}", params={"partner": "strangers", "lang": "ru"}).text
    assert f"min-height:{plain.narrow}px" in unknown
    with httpx.Client(base_url=server.base_url, timeout=30) as owner:
        assert owner.post("/admin/login", data={"key": OWNER.text}).status_code == 303
        page = owner.get(f"/admin/petitions/{SLUG}", params={"partner": "friends", "lang": "ru"})
    text = html.unescape(re.search(r'id="snippet-text"[^>]*>(.*?)</textarea>', page.text, re.S)[1])  # type: ignore[index]
    assert f"min-height:{theirs.narrow}px" in text
    # The heights admin.js builds the snippet from, by partner, language and layout.
    spaces = json.loads(html.unescape(re.search(r'data-spaces="([^"]*)"', page.text)[1]))  # type: ignore[index]
    assert spaces["friends"]["ru"]["full"] == [theirs.narrow, theirs.wide]
    assert spaces[""]["ru"]["full"] == [plain.narrow, plain.wide]
