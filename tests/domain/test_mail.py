"""Composing the confirmation and "already signed" mails: language, neutral sender and subject,
the petition named only in the body, both links, escaped HTML, no tracking; and the bytes that
go on the wire: 7-bit, CRLF, short lines, RFC 2047 words, parsed back by the standard library
into the same mail; addresses with international domains in their ASCII form."""

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


def render(body: dict[str, Any], petition: Petition | Entry | None = None, **kw: Any) -> mail.Mail:
    options: dict[str, Any] = {
        "base_url": BASE + "/",
        "mail_from": FROM,
        "confirm_lifetime": 7 * 86_400,
        "now": 1_700_000_000,
        **kw,
    }
    return mail.render(body, petition or petitions.example("email"), **options)


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


def translated_everywhere() -> Petition:
    """The example petition with a title in every shipped language."""
    petition = petitions.example("email")
    english = petition.texts["en"]
    texts = {lang: dataclasses.replace(english, title=f"Title ({lang})") for lang in i18n.LANGUAGES}
    return dataclasses.replace(petition, texts=texts)


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
@pytest.mark.parametrize("kind", mail.KINDS)
def test_every_language_writes_both_mails_with_their_links_apart(lang: str, kind: str) -> None:
    """Every catalog's mail keeps each link alone on its line (the HTML part makes a button of
    it), names the petition, and is marked with its language and direction."""
    t = i18n.catalog(lang)
    message = compose(payload(kind, lang=lang), translated_everywhere())
    text, html = parts(message)
    lines = text.splitlines()
    assert withdraw_url() in lines
    assert (confirm_url() in lines) == (kind == "confirm")
    assert f"Title ({lang})" in text
    subject = t("mail_subject") if kind == "confirm" else t("mail_subject_signed")
    assert message["Subject"] == subject
    assert f'<html lang="{lang}" dir="{t.dir}">' in html
    assert html.count('style="display:inline-block') == (2 if kind == "confirm" else 1)


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


# --- The bytes on the wire ---------------------------------------------------------------------


def received(sent: mail.Mail) -> EmailMessage:
    """The mail as an SMTP server stores it (CRLF and all), parsed by the standard library."""
    parsed = email.message_from_bytes(sent.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("kind", mail.KINDS)
def test_the_bytes_are_seven_bit_crlf_short_lines_and_parse_back_to_the_same_mail(
    kind: str, lang: str
) -> None:
    sent = render(payload(kind, lang))
    assert sent.data.isascii() and not sent.smtputf8  # safe for a 7-bit server
    assert b"\n" not in sent.data.replace(b"\r\n", b"")  # CRLF only, as DATA sends it
    assert b"\r" not in sent.data.replace(b"\r\n", b"")
    assert max(len(line) for line in sent.data.split(b"\r\n")) <= 78  # RFC 5322's should
    assert (sent.sender, sent.recipient) == (FROM, TO)

    t, message = i18n.catalog(lang), received(sent)
    assert [str(message[h]) for h in ("To", "Subject", "Auto-Submitted")] == [
        TO,
        t("mail_subject" if kind == "confirm" else "mail_subject_signed"),
        "auto-generated",
    ]
    assert email.utils.parseaddr(str(message["From"])) == (t("mail_from_name"), FROM)
    assert email.utils.parsedate_to_datetime(str(message["Date"])).timestamp() == 1_700_000_000
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.net>", str(message["Message-ID"]))
    assert message.get_content_type() == "multipart/alternative"
    plain, page = message.iter_parts()
    assert (plain.get_content_type(), page.get_content_type()) == ("text/plain", "text/html")
    for part in (plain, page):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    # The same words as a reader of the composed mail gets, links on lines of their own.
    text, html = (part.replace("\r\n", "\n") for part in parts(compose(payload(kind, lang))))
    assert plain.get_content().replace("\r\n", "\n") == text
    assert page.get_content().replace("\r\n", "\n") == html
    assert withdraw_url() in text.splitlines()
    assert (confirm_url() in text.splitlines()) is (kind == "confirm")


def test_russian_headers_are_rfc_2047_words_and_english_text_stays_readable() -> None:
    ru, en = render(payload(lang="ru")), render(payload())
    head = ru.data.partition(b"\r\n\r\n")[0].decode("ascii")
    assert "=?utf-8?b?" in head  # the sender's name and the subject, encoded
    assert i18n.catalog("ru")("mail_subject") == str(received(ru)["Subject"])
    # English is quoted-printable: its links are in the raw source too, as scanners see them.
    assert b"Content-Transfer-Encoding: quoted-printable" in en.data
    assert f"/withdraw/{WITHDRAW}".encode() in en.data.replace(b"=\r\n", b"")


@pytest.mark.parametrize(
    "words",
    ["Подтвердите, пожалуйста, вашу подпись под обращением " * 2, "Please confirm it now " * 5],
)
def test_a_long_subject_and_a_sender_name_with_specials_fold_and_parse_back(words: str) -> None:
    source = (
        'slug = "custom"\ngoal = 10\ntitle = "Custom"\nsummary = "S"\ntarget = "T"\n'
        'statement = "We ask."\n[mail]\nfrom_name = \'Open Doors, "Inc." <x>\'\n'
        f'subject = "{words}\\nX-Injected: yes"\n'  # a TOML escape: a line break
    )
    sent = render(payload(), parse(source))
    assert max(len(line) for line in sent.data.split(b"\r\n")) <= 78
    assert b"\r\nX-Injected" not in sent.data  # a line break in the file starts no header
    message = received(sent)
    assert message["X-Injected"] is None and len(message.get_all("Subject", [])) == 1
    assert str(message["Subject"]) == f"{words.strip()} X-Injected: yes"
    assert email.utils.parseaddr(str(message["From"])) == ('Open Doors, "Inc." <x>', FROM)


def test_an_edited_petition_gets_its_new_words_not_a_cached_mail() -> None:
    example = petitions.example("email")
    edited = dataclasses.replace(example.texts["en"], title="A new title")
    again = dataclasses.replace(example, texts={**example.texts, "en": edited})
    assert "A new title" not in parts(compose(payload(), example))[0]
    assert "A new title" in parts(compose(payload(), again))[0]


def test_each_mail_has_its_own_links_and_message_id() -> None:
    one, two = render(payload()), render(payload(confirm="D" * 43, withdraw="V" * 43))
    assert received(one)["Message-ID"] != received(two)["Message-ID"]
    text = parts(received(two))[0]
    assert f"{BASE}/confirm/{'D' * 43}" in text.splitlines() and CONFIRM not in text


def test_the_address_is_never_in_the_repr_of_a_mail() -> None:
    sent = render(payload())
    assert TO not in repr(sent) and "zt.mail" not in repr(sent)


@pytest.mark.parametrize(
    ("to", "recipient"),
    [
        ("Zt.Anna@ÖBB.at", "Zt.Anna@xn--bb-eka.at"),
        ("zt@faß.de", "zt@xn--fa-hia.de"),  # IDNA 2008: not fass.de, another domain
        ("zt@пример.рф", "zt@xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_an_international_domain_goes_in_its_ascii_form(to: str, recipient: str) -> None:
    sent = render(payload(to=to))
    assert (sent.recipient, sent.smtputf8) == (recipient, False)
    assert sent.data.isascii()
    assert str(received(sent)["To"]) == recipient


def test_a_non_ascii_local_part_needs_smtputf8_and_goes_in_utf8() -> None:
    sent = render(payload(to="зт.юзер@пример.рф"))
    assert sent.smtputf8 and sent.recipient == "зт.юзер@xn--e1afmkfd.xn--p1ai"
    assert "To: зт.юзер@xn--e1afmkfd.xn--p1ai\r\n".encode() in sent.data  # RFC 6532
    assert parts(received(sent))[0] == parts(compose(payload()))[0]  # the same words


@pytest.mark.parametrize(
    "to", ["two@example.org, three@example.org", "x@example.org\r\nBcc: y@example.org", "no-at"]
)
def test_anything_but_one_plain_address_is_refused(to: str) -> None:
    with pytest.raises(BadPayload):
        render(payload(to=to))
