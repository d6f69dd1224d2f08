"""Composing the confirmation and "already signed" mails: language, neutral sender and subject,
the petition named only in the body, both links, escaped HTML, no tracking."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import re
from email.message import EmailMessage
from typing import Any

import pytest

from server.domain import i18n, links, mail
from server.domain.errors import BadPayload
from server.domain.petitions import Entry, Petition, parse
from tests.support import petitions

BASE = "https://petitions.example.net"
FROM = "petitions@example.net"
CONFIRM = "C" * 43
WITHDRAW = "W" * 43
TO = "zt.mail@example.org"


def payload(kind: str = "confirm", lang: str = "en", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": kind,
        "to": TO,
        "lang": lang,
        "petition_id": 1,
        "withdraw": WITHDRAW,
    }
    if kind == "confirm":
        body["confirm"] = CONFIRM
    return {**body, **extra}


def compose(body: dict[str, Any], petition: Petition | Entry | None = None) -> EmailMessage:
    return mail.compose(
        body,
        petition or petitions.example("email"),
        base_url=BASE + "/",
        mail_from=FROM,
        confirm_lifetime=7 * 86_400,
        now=1_700_000_000,
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html), as a mail client reads them after the trip through bytes."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def confirm_url() -> str:
    return BASE + links.path(links.CONFIRM, CONFIRM)


def withdraw_url() -> str:
    return BASE + links.path(links.WITHDRAW, WITHDRAW)


def test_confirm_mail_in_english_has_both_links_each_on_its_own_line() -> None:
    message = compose(payload())
    t = i18n.catalog("en")
    text, html = parts(message)
    assert message["To"] == TO
    assert message["Subject"] == t("mail_subject")
    assert email.utils.parseaddr(message["From"]) == (t("mail_from_name"), FROM)
    lines = text.splitlines()
    assert confirm_url() in lines and withdraw_url() in lines
    assert "7 days" in text
    assert f'href="{confirm_url()}"' in html and f'href="{withdraw_url()}"' in html
    assert t("mail_button_confirm") in html and t("mail_button_withdraw") in html
    assert message.get_content_type() == "multipart/alternative"


def test_confirm_mail_in_russian_from_the_form_language() -> None:
    message = compose(payload(lang="ru"))
    t = i18n.catalog("ru")
    text, html = parts(message)
    assert message["Subject"] == t("mail_subject")
    assert email.utils.parseaddr(message["From"])[0] == t("mail_from_name")
    title = petitions.example().texts["ru"].title
    assert title in text and "Чтобы подтвердить подпись" in text
    assert confirm_url() in text.splitlines() and withdraw_url() in text.splitlines()
    assert 'lang="ru"' in html and t("mail_button_confirm") in html


def test_a_language_the_petition_lacks_falls_back_to_its_own() -> None:
    text, _ = parts(compose(payload(lang="de")))
    assert petitions.example().texts["en"].title in text
    assert compose(payload(lang="de"))["Subject"] == i18n.catalog("en")("mail_subject")


def test_only_the_body_names_the_petition() -> None:
    for kind in mail.KINDS:
        for lang in ("en", "ru"):
            message = compose(payload(kind, lang))
            title = petitions.example().texts[lang].title
            text, html = parts(message)
            assert title in text and title in html
            sender_name = email.utils.parseaddr(message["From"])[0]
            seen = f"{sender_name}\n{message['Subject']}".lower()  # what an inbox list shows
            for word in ("LGBT", "ЛГБТ", "Sphere", "petition", "петици", title):
                assert word.lower() not in seen, (kind, lang, word)


def test_already_signed_mail_has_only_the_withdraw_link() -> None:
    message = compose(payload("already_signed"))
    text, html = parts(message)
    assert message["Subject"] == i18n.catalog("en")("mail_subject_signed")
    assert withdraw_url() in text.splitlines()
    assert "/confirm/" not in text and "/confirm/" not in html
    assert "already signed" in text
    assert f'href="{withdraw_url()}"' in html


def test_the_petition_files_mail_section_is_honoured() -> None:
    source = (
        'slug = "custom"\ngoal = 10\ntitle = "Custom"\nsummary = "S"\ntarget = "T"\n'
        'statement = "We ask."\n[mail]\nfrom_name = "Open Doors"\nsubject = "Your signature"\n'
        '[translations.ru]\ntitle = "Своя"\n[translations.ru.mail]\nsubject = "Ваша подпись"\n'
    )
    petition = parse(source)
    en, ru = compose(payload(), petition), compose(payload(lang="ru"), petition)
    assert en["Subject"] == "Your signature" and ru["Subject"] == "Ваша подпись"
    assert email.utils.parseaddr(en["From"]) == ("Open Doors", FROM)
    assert email.utils.parseaddr(ru["From"]) == ("Open Doors", FROM)  # falls back to the file's


def test_html_escapes_the_petition_title() -> None:
    example = petitions.example("email")
    hostile = dataclasses.replace(example.texts["en"], title='<script>alert("x")</script> & co')
    petition = dataclasses.replace(example, texts={**example.texts, "en": hostile})
    text, html = parts(compose(payload(), petition))
    assert '<script>alert("x")</script> & co' in text  # plain text is plain
    assert "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html


def test_headers_identify_an_automatic_mail_and_track_nothing() -> None:
    message = compose(payload())
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.net>")
    assert email.utils.parsedate_to_datetime(message["Date"]).timestamp() == 1_700_000_000
    _, html = parts(message)
    assert "<img" not in html and "src=" not in html and "<script" not in html
    urls = re.findall(r'href="([^"]+)"', html)
    assert set(urls) == {confirm_url(), withdraw_url()}  # no redirects, no added parameters


def test_an_entry_is_accepted_like_its_petition() -> None:
    petition = petitions.example("email")
    entry = Entry(1, petition.slug, petition, petition.goal, "open", 0, {})
    assert parts(compose(payload(), entry))[0] == parts(compose(payload(), petition))[0]


@pytest.mark.parametrize(
    "broken",
    [
        {"kind": "newsletter"},
        {"to": ""},
        {"withdraw": None},
        {"confirm": None},
    ],
)
def test_a_payload_we_never_write_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(BadPayload):
        compose({**payload(), **broken})
