"""Every shipped language over HTTP, on a live server on SQLite and on PostgreSQL: its catalog is
complete with the plural forms CLDR gives it, the widget renders in it (chosen by `?lang=` and
by a regional `Accept-Language`), and one signing round trip speaks it throughout: field errors
with and without JavaScript, the thank-you, the check-your-email step, the confirmation mail
and the page its link opens, and the badge.

The languages come from the catalogs themselves, and the petitions here are translated into
each of them by the test, so a new catalog file is tested with no other change. What a browser
adds (layout, right to left, the script's numbers) is in tests/browser/."""

from __future__ import annotations

import dataclasses
import gzip
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import babel
import babel.core
import httpx
import pytest

from server.domain import countries, i18n
from server.domain.petitions import Petition, parse
from server.web import mailcatcher
from tests.support import backends, catcher, live, petitions
from tests.web.test_widget import Node, tree

LANGUAGES = sorted(i18n.LANGUAGES)
HTML = {"Accept": "text/html,application/xhtml+xml"}
COUNTED = "every-language"  # signatures count at once: a thank-you
CONFIRMED = "every-language-by-email"  # signatures wait for a mail: check your email
EVERYWHERE = "example-everywhere"  # the example petition, offered in every language
NAMED = "example-everywhere-named"  # the same, with the box "Show my name on the list ..."
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A regional tag per language, as browsers send them: each must reach its catalog. A language
# not listed gets its CLDR likely region (pl: pl-PL).
REGIONAL = {"de": "de-CH", "pt": "pt-BR", "es": "es-419", "fr": "fr-CA", "en": "en-GB"}


def regional(lang: str) -> str:
    likely = str(babel.core.get_global("likely_subtags").get(lang, f"{lang}_Zzzz_ZZ"))
    return REGIONAL.get(lang) or f"{lang}-{likely.split('_')[-1]}"


def petition(slug: str, confirmation: str) -> Petition:
    translations = "".join(
        f'\n[translations.{lang}]\ntitle = "{slug} ({lang})"\nsummary = "Summary ({lang})"\n'
        for lang in LANGUAGES
        if lang != "en"
    )
    return parse(
        f"""
slug = "{slug}"
lang = "en"
goal = 50000
title = "{slug} (en)"
summary = "Summary (en)"
target = "The council"
statement = "We ask the council."
organiser = "All Out"

[form]
country = "optional"

[signing]
confirmation = "{confirmation}"
{translations}"""
    )


def everywhere() -> Petition:
    """The example petition, its full texts (Russian, else English) offered in every language:
    what the weight budget is measured on."""
    example = petitions.example()
    texts = {lang: example.texts.get(lang, example.texts["en"]) for lang in LANGUAGES}
    return dataclasses.replace(example, slug=EVERYWHERE, texts=texts)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[catcher.Catcher]:
    caught = catcher.Catcher().open()
    yield caught
    caught.stop_thread()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: catcher.Catcher,
) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("languages")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    named = dataclasses.replace(everywhere(), slug=NAMED, name_to_target="optional")
    made = [petition(COUNTED, "none"), petition(CONFIRMED, "email"), everywhere(), named]
    live.prepare(url, made)
    server = live.LiveServer(url, folder, SMTP_URL=mailbox.url, MAIL_FROM="p@example.org")
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def form_fields(doc: Node) -> dict[str, str]:
    form = doc.by_id("pw-form")
    return {
        n.attrs["name"]: n.attrs.get("value", "")
        for n in [*form.iter(), *doc.find_all(form="pw-form")]
        if n.tag == "input" and n.attrs.get("type") in ("hidden", None) and "name" in n.attrs
    }


def words(text: str) -> str:
    """Text with its runs of white space (no-break spaces too) as one space, as the parser
    gives a document's text."""
    return " ".join(text.split())


def page(client: httpx.Client, slug: str, lang: str) -> Node:
    response = client.get(f"/widget/{slug}", params={"lang": lang})
    assert response.status_code == 200
    return tree(response.text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_is_complete_with_its_cldr_plural_forms(lang: str) -> None:
    t = i18n.catalog(lang)
    assert t.lang == lang
    assert set(t.messages) == set(i18n.catalog("en").messages)
    categories = set(babel.Locale.parse(lang).plural_form.tags) | {"other"}
    assert set(t.plural_forms("signed_count")) == categories


@pytest.mark.parametrize("lang", LANGUAGES)
def test_widget_renders_in_the_language(client: httpx.Client, lang: str) -> None:
    t = i18n.catalog(lang)
    doc = page(client, COUNTED, lang)
    root = doc.find("html")
    assert root.attrs["lang"] == lang
    assert root.attrs["dir"] == ("rtl" if lang == "ar" else "ltr")
    assert doc.find("h1").text() == f"{COUNTED} ({lang})"
    count = client.get(f"/api/petitions/{COUNTED}").json()["signatures"]
    assert doc.find("strong").text() == words(t.plural("signed_count", count))
    assert doc.find(**{"class": "pw-goal"}).text() == words(t("goal", goal=50_000))
    assert doc.find("button", **{"class": "pw-submit"}).text() == words(t("sign_button"))
    assert doc.find("label", **{"for": "pw-name"}).text() == words(t("name_label"))
    options = {o.attrs["value"]: o.text() for o in doc.find("select").find_all("option")}
    assert options["DE"] == words(countries.name("DE", lang))
    assert options[""] == words(t("country_none"))
    notice = doc.find("p", **{"class": "pw-notice"}).text()
    assert notice.startswith(words(t("consent_notice", organiser="All Out")))
    # The English original beside a consent text no native speaker has signed off yet.
    originals = doc.find_all(**{"class": "pw-orig"})
    assert bool(originals) == t.unreviewed_consent == (lang != "en")
    # A browser that asks for a regional variant gets the language.
    negotiated = client.get(f"/widget/{COUNTED}", headers={"Accept-Language": regional(lang)})
    assert tree(negotiated.text).find("html").attrs["lang"] == lang


@pytest.mark.parametrize("lang", LANGUAGES)
def test_signing_round_trip_speaks_the_language(client: httpx.Client, lang: str) -> None:
    t = i18n.catalog(lang)
    sign = f"/api/petitions/{COUNTED}/signatures"
    # Without JavaScript: nothing filled in, the form comes back with errors beside the fields.
    doc = page(client, COUNTED, lang)
    answer = client.post(sign, data={**form_fields(doc), "name": "", "email": ""}, headers=HTML)
    assert answer.status_code == 422
    again = tree(answer.text)
    assert again.find("html").attrs["lang"] == lang
    assert again.by_id("pw-alert").text() == words(t("form_errors"))
    assert again.by_id("pw-name-err").text() == words(t("error_required"))
    # With JavaScript: the JSON answer's messages are in the language too.
    token = client.get(f"/api/petitions/{COUNTED}/token", params={"lang": lang}).json()["token"]
    person = live.new_signer(lang)
    bad = client.post(sign, json={"token": token, "lang": lang, **person, "email": "x@@y"})
    assert bad.status_code == 422
    assert bad.json()["errors"]["email"] == t("error_email_invalid")
    # Signed: the thank-you, and the count the answer gives, in the language's numbers.
    doc = page(client, COUNTED, lang)
    fields = {**form_fields(doc), **person, "country": "DE"}
    answer = client.post(sign, data=fields, headers=HTML)
    assert answer.status_code == 303  # to the thank-you page's own address, in the language
    thanks = client.get(answer.headers["location"], headers=HTML)
    assert f"lang={lang}" in answer.headers["location"]
    shown = tree(thanks.text)
    assert shown.by_id("pw-thanks-h").text() == words(t("thanks_heading"))
    count = client.get(f"/api/petitions/{COUNTED}").json()["signatures"]
    assert shown.find("strong").text() == words(t.plural("signed_count", count))
    # The badge says the count in the language.
    badge = client.get(f"/badge/{COUNTED}.svg", params={"lang": lang}).text
    assert html.escape(t("badge_count", count=count), quote=False) in badge


@pytest.fixture(scope="module")
def submissions(
    server: live.LiveServer, mailbox: catcher.Catcher
) -> dict[str, tuple[str, dict[str, str], mailcatcher.CaughtMail]]:
    """A no-JavaScript submission on the petition that confirms by email, in every language,
    with its answer and the mail it brought: sent all at once, as the mail job delivers its
    rows every few seconds."""
    sent = {}
    before = len(mailbox.deliveries())  # the other engine's server used the same mailbox
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for lang in LANGUAGES:
            doc = page(client, CONFIRMED, lang)
            person = live.new_signer(f"m{lang}")
            answer = client.post(
                f"/api/petitions/{CONFIRMED}/signatures",
                data={**form_fields(doc), **person},
                headers=HTML,
            )
            assert answer.status_code == 303
            sent[lang] = (client.get(answer.headers["location"], headers=HTML).text, person)
    delivered = {d.mail.to: d.mail for d in mailbox.wait_for(before + len(LANGUAGES), timeout=60)}
    return {
        lang: (text, person, delivered[person["email"]]) for lang, (text, person) in sent.items()
    }


@pytest.mark.parametrize("lang", LANGUAGES)
def test_confirmation_by_email_speaks_the_language(
    client: httpx.Client,
    submissions: dict[str, tuple[str, dict[str, str], mailcatcher.CaughtMail]],
    lang: str,
) -> None:
    t = i18n.catalog(lang)
    answer, person, mail = submissions[lang]
    check = tree(answer)
    assert check.find("html").attrs["lang"] == lang
    assert check.by_id("pw-check-h").text() == words(t("check_heading"))
    assert words(t("check_text_sent")) in check.by_id("pw-check").text()
    assert person["email"] not in answer  # the page's own address names nobody
    # The mail, in the form's language; its link opens a page in that language.
    assert mail.subject == t("mail_subject")
    assert f"{CONFIRMED} ({lang})" in mail.text
    assert t("mail_why") in mail.text
    confirm = next(link for link in mail.links if "/confirm/" in link)
    opened = client.get(confirm)
    assert opened.status_code == 200
    assert re.search(rf'<html lang="{lang}" dir="{t.dir}"', opened.text)
    assert html.escape(t("confirm_button"), quote=False) in opened.text


def test_first_render_fits_the_budget_in_every_language(client: httpx.Client) -> None:
    """In every language, the frame's first render (document, stylesheet, script) is at most
    15 KB gzipped in 3 requests, with the example petition's full texts (Russian where it has them,
    else English), without and with the name-to-target box. The figures are kept as an
    artifact (test-artifacts/widget-weight-languages.json) for docs/widget.md."""
    gz = {"Accept-Encoding": "gzip"}
    sizes: dict[str, dict[str, int]] = {}
    for slug, key in ((EVERYWHERE, ""), (NAMED, " with the name-to-target box")):
        for lang in LANGUAGES:
            with client.stream("GET", f"/widget/{slug}", params={"lang": lang}, headers=gz) as r:
                raw = b"".join(r.iter_raw())
            assert r.headers["content-encoding"] == "gzip"
            doc = tree(gzip.decompress(raw).decode())
            assert doc.find("html").attrs["lang"] == lang
            assert bool(doc.find_all(id="pw-c-target")) == (slug == NAMED)
            urls = [n.attrs["src"] for n in doc.find_all("script") if "src" in n.attrs]
            urls += [n.attrs["href"] for n in doc.find_all("link")]
            assert len(urls) == 2 and not doc.find_all("img")
            assets = []
            for url in urls:
                with client.stream("GET", url, headers=gz) as asset:
                    assets.append(len(b"".join(asset.iter_raw())))
            sizes[lang + key] = {
                "document": len(raw),
                "css + js": sum(assets),
                "total": len(raw) + sum(assets),
            }
            assert sizes[lang + key]["total"] <= 15 * 1024, (lang + key, sizes[lang + key])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "widget-weight-languages.json").write_text(json.dumps(sizes, indent=2))
