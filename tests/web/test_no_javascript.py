"""Signing without JavaScript, on a live server on SQLite and PostgreSQL, with the form tokens'
minimum age on (30 s, so that no test depends on how fast it runs): the thank-you page has an
address of its own (Post/Redirect/Get) that holds no signer data, and a form renewed after a
refusal is never "too fresh" for a person who has already waited. The JSON API's renewal of an
expired token is here too. The same flows in Chromium are in tests/browser."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from server.domain import i18n
from server.domain.form_tokens import FormTokens
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
EMAIL_SLUG = "confirm-by-mail"
PAGE = f"/widget/{SLUG}"
SIGN = f"/api/petitions/{SLUG}/signatures"
HTML = {"Accept": "text/html,application/xhtml+xml"}
MIN_AGE = 30
EN = i18n.catalog("en")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("nojs")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    by_mail = dataclasses.replace(petitions.example("email"), slug=EMAIL_SLUG)
    live.prepare(url, [petitions.example(), by_mail])
    server = live.LiveServer(
        url,
        folder,
        TOKEN_MIN_AGE=MIN_AGE,
        # A closed port: the one petition that confirms by email keeps its mails waiting.
        SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}",
        MAIL_FROM="p@example.org",
    )
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, follow_redirects=False) as c:
        yield c


def minted(seconds_ago: float, slug: str = SLUG, partner: str = "", lang: str = "en") -> str:
    """A genuine token issued `seconds_ago` (with our key, on a clock set back)."""
    past = FormTokens(
        [live.SECRET], lifetime=7200, min_age=0, clock=lambda: time.time() - seconds_ago
    )
    return past.issue(slug, partner, lang)


def form_token(text: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', text)
    assert found is not None
    return found[1]


def post(client: httpx.Client, fields: dict[str, str], slug: str = SLUG) -> httpx.Response:
    return client.post(f"/api/petitions/{slug}/signatures", data=fields, headers=HTML)


def count(client: httpx.Client) -> int:
    value: int = client.get(f"/api/petitions/{SLUG}").json()["signatures"]
    return value


# --- Post, redirect, get -------------------------------------------------------------------------


def test_the_thank_you_page_has_an_address_of_its_own(client: httpx.Client) -> None:
    before = count(client)
    signer = live.new_signer()
    fields = {"token": minted(60, partner="friends"), "lang": "en", **signer}
    answer = post(client, {**fields, "accent": "#5b2a86", "frame": "f1"})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"{PAGE}?")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["partner"] == ["friends"] and query["accent"] == ["#5b2a86"]
    # Nothing of the signer: neither what was typed nor the withdrawal link.
    for typed in signer.values():
        assert typed not in urllib.parse.unquote_plus(location)
    assert "withdraw" not in location and answer.headers["cache-control"] == "no-store"
    # The page, and the same page when reloaded or opened from a shared address.
    pages = [client.get(location, headers=HTML) for _ in range(2)]
    for page in pages:
        assert page.status_code == 200
        assert EN("thanks_heading") in page.text
        assert re.search(r'id="pw-form"[^>]* hidden', page.text)
        assert "/withdraw/" not in page.text and signer["email"] not in page.text
        assert 'href="" target' in page.text  # the withdrawal offer, empty and hidden
    assert count(client) == before + 1
    # A mark not ours, or of another petition, is the form: nobody is thanked by a made-up link.
    for mark in ("forged", query["done"][0] + "x"):
        page = client.get(f"{PAGE}?done={urllib.parse.quote(mark)}", headers=HTML)
        assert page.status_code == 200 and not re.search(r'id="pw-form"[^>]* hidden', page.text)


def test_the_signing_address_opened_in_a_browser_leads_to_the_widget(
    client: httpx.Client,
) -> None:
    page = client.get(SIGN, headers=HTML)
    assert (page.status_code, page.headers["location"]) == (303, PAGE)
    api = client.get(SIGN, headers={"Accept": "application/json"})
    assert api.status_code == 405 and api.json()["error"] == "method_not_allowed"


def test_every_accepted_submission_leads_to_the_same_address(client: httpx.Client) -> None:
    """A first signer, a repeat, a retry and the honeypot: one `303`, with one address but for
    the moment in its mark. And on a petition that confirms by email, the page it leads to
    says to check the mail without naming the address."""
    first = live.new_signer()
    body = {"token": minted(60, EMAIL_SLUG), **first}
    cases = [
        body,
        body,  # the very same submission again
        {"token": minted(60, EMAIL_SLUG), **first},  # the same signer, a new form
        {"token": minted(60, EMAIL_SLUG), **live.new_signer(), "website": "https://x.example"},
    ]
    answers = [post(client, fields, EMAIL_SLUG) for fields in cases]
    assert {a.status_code for a in answers} == {303}

    def but_the_mark(response: httpx.Response) -> tuple[str, tuple[tuple[str, str], ...]]:
        location = re.sub(r"done=[^&]+", "", response.headers["location"])
        headers = sorted(
            (k, v) for k, v in response.headers.items() if k not in ("date", "location")
        )
        return location, tuple(headers)

    assert len({but_the_mark(a) for a in answers}) == 1
    page = client.get(answers[0].headers["location"], headers=HTML)
    assert EN("check_heading") in page.text and EN("check_text_sent") in page.text
    assert first["email"] not in page.text


# --- A renewed form is never "too fresh" for someone who waited ------------------------------


def test_an_expired_form_is_renewed_and_signs_at_once(client: httpx.Client) -> None:
    before = count(client)
    signer = live.new_signer()
    expired = minted(7300, partner="friends", lang="ru")
    answer = post(client, {"token": expired, **signer})
    assert answer.status_code == 400
    assert i18n.catalog("ru")("error_expired_token") in answer.text
    assert signer["email"] in answer.text  # the input kept
    # Sign again at once: not "That was very fast" for a person who had waited.
    again = post(client, {"token": form_token(answer.text), "lang": "ru", **signer})
    assert again.status_code == 303
    assert "partner=friends" in again.headers["location"]
    assert count(client) == before + 1


def test_a_form_sent_too_fast_is_renewed_with_the_rest_of_its_wait(client: httpx.Client) -> None:
    """A bot gains nothing by renewing: the renewal of a too-fresh form is too fresh too."""
    page = client.get(PAGE, headers=HTML)
    answer = post(client, {"token": form_token(page.text), **live.new_signer()})
    assert answer.status_code == 400
    assert EN("error_token_too_fresh") in answer.text
    again = post(client, {"token": form_token(answer.text), **live.new_signer()})
    assert again.status_code == 400 and EN("error_token_too_fresh") in again.text


def test_an_empty_form_sent_at_once_hears_required(client: httpx.Client) -> None:
    page = client.get(PAGE, headers=HTML)
    answer = post(client, {"token": form_token(page.text), "name": "", "email": ""})
    assert answer.status_code == 422
    required = f'">{EN("error_required")}</span>'  # beside its field (the script has it too)
    assert answer.text.count(required) == 2
    assert EN("error_token_too_fresh") not in answer.text
    # A forged or an expired token still hears of nothing but the token.
    for token, error in (("forged", "error_invalid_token"), (minted(7300), "error_expired_token")):
        refused = post(client, {"token": token, "name": "", "email": ""})
        assert refused.status_code == 400
        assert EN(error) in refused.text and required not in refused.text


def test_the_api_renews_an_expired_token_in_its_answer(client: httpx.Client) -> None:
    before = count(client)
    signer = live.new_signer()
    answer = client.post(SIGN, json={"token": minted(7300, partner="friends"), **signer})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "expired_token" and body["token"]
    again = client.post(SIGN, json={"token": body["token"], **signer})
    assert again.status_code == 201  # at once
    assert count(client) == before + 1
    # Other refusals carry no token: a forged one is not renewed.
    assert "token" not in client.post(SIGN, json={"token": "forged", **signer}).json()
