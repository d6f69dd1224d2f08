"""The mails a signer gets: a confirmation, or "you have already signed", composed from an
outbox row's payload (`store/signatures._wait_for_confirmation` writes it).

The mail may be read by someone hostile to the signer (a shared or seized phone, a family
member, an employer's mail server), so only the body names the petition: the sender's name and
the subject are the catalog's neutral wording unless the petition file sets its own
(`[mail] from_name`, `subject`). The body is in the language the form was shown in, or the
petition's own when it has no texts in that one.

Each mail has a plain-text part, with every link as a bare URL on a line of its own (text-only
readers and copy-paste), and an HTML alternative with the same words, escaped, and the links as
buttons. Nothing tracks the reader: no images, no remote resources, no parameters added to
links, no per-reader headers beyond `Message-ID`. `Auto-Submitted: auto-generated` tells
mailers not to answer with vacation replies.

Pure: no network, no storage. `now` is passed in so a test (or a clock) fixes the `Date`.
"""

from __future__ import annotations

import email.utils
import html
import math
import time
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, TypeGuard

from server.domain import i18n, links
from server.domain.errors import BadPayload
from server.domain.petitions import Entry, Petition

CONFIRM = "confirm"
ALREADY_SIGNED = "already_signed"
KINDS = (CONFIRM, ALREADY_SIGNED)

DAY = 86_400
# Stands for a link inside a catalog message while it is turned into HTML (never in a title).
_SLOT = "\x00{}\x00"

_BUTTON = (
    "display:inline-block;padding:10px 18px;border-radius:6px;background:#1d1b2a;"
    "color:#ffffff;text-decoration:none;font-weight:600"
)


def compose(
    payload: Mapping[str, Any],
    entry_or_petition: Entry | Petition,
    *,
    base_url: str,
    mail_from: str,
    confirm_lifetime: int,
    now: float | None = None,
) -> EmailMessage:
    """The mail an outbox row's `payload` asks for, about `entry_or_petition`.

    Raises BadPayload when the payload is not one we write (an unknown kind, a missing
    address or token): such a row can never be sent."""
    petition = entry_or_petition
    if isinstance(petition, Entry):
        petition = petition.petition
    kind, to, withdraw = payload.get("kind"), payload.get("to"), payload.get("withdraw")
    confirm = payload.get("confirm") if kind == CONFIRM else None
    if kind not in KINDS or not _text(to) or not _text(withdraw):
        raise BadPayload("not a mail payload")
    if kind == CONFIRM and not _text(confirm):
        raise BadPayload("a confirmation mail needs its confirm token")
    assert isinstance(to, str) and isinstance(withdraw, str)
    if "@" not in mail_from:
        raise BadPayload("MAIL_FROM must be an address")

    lang = payload.get("lang")
    lang = lang if isinstance(lang, str) and lang in petition.texts else petition.lang
    texts = petition.in_language(lang)
    t = i18n.catalog(lang)
    base = base_url.rstrip("/")
    urls = {links.WITHDRAW: base + links.path(links.WITHDRAW, withdraw)}
    if confirm is not None:
        urls[links.CONFIRM] = base + links.path(links.CONFIRM, confirm)

    # Paragraphs with a slot where each link goes; the text and HTML parts fill them alike.
    slot = {name: _SLOT.format(name) for name in urls}
    if kind == CONFIRM:
        days = max(1, math.ceil(confirm_lifetime / DAY))
        opening = t("mail_confirm", title=texts.title, confirm_url=slot[links.CONFIRM], days=days)
        default_subject = t("mail_subject")
    else:
        opening = t("mail_already", title=texts.title)
        default_subject = t("mail_subject_signed")
    paragraphs = [
        *opening.split("\n\n"),
        *t("mail_withdraw", withdraw_url=slot[links.WITHDRAW]).split("\n\n"),
        t("mail_why"),
    ]
    buttons = {links.CONFIRM: t("mail_button_confirm"), links.WITHDRAW: t("mail_button_withdraw")}

    message = EmailMessage()
    from_name = texts.mail_from_name or t("mail_from_name")
    message["From"] = email.utils.formataddr((from_name, mail_from))
    message["To"] = to
    message["Subject"] = texts.mail_subject or default_subject
    message["Date"] = email.utils.formatdate(time.time() if now is None else now, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=mail_from.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_plain(paragraphs, slot, urls))
    message.add_alternative(_html(paragraphs, slot, urls, buttons, t), subtype="html")
    return message


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _plain(paragraphs: list[str], slot: dict[str, str], urls: dict[str, str]) -> str:
    text = "\n\n".join(paragraphs)
    for name, marker in slot.items():
        text = text.replace(marker, urls[name])
    return text + "\n"


def _html(
    paragraphs: list[str],
    slot: dict[str, str],
    urls: dict[str, str],
    buttons: dict[str, str],
    t: i18n.Catalog,
) -> str:
    by_marker = {marker: name for name, marker in slot.items()}
    blocks = []
    for paragraph in paragraphs:
        lines: list[str] = []
        for line in paragraph.split("\n"):
            name = by_marker.get(line.strip())
            if name is None:
                lines.append(_escape_with_links(line, by_marker, urls))
                continue
            url = html.escape(urls[name])
            if lines:
                blocks.append(f"<p>{'<br>'.join(lines)}</p>")
                lines = []
            blocks.append(
                f'<p><a href="{url}" style="{_BUTTON}">{html.escape(buttons[name])}</a></p>'
                f'<p style="font-size:13px;color:#5a5766;word-break:break-all">'
                f'<a href="{url}" style="color:#5a5766">{url}</a></p>'
            )
        if lines:
            blocks.append(f"<p>{'<br>'.join(lines)}</p>")
    body = "\n".join(blocks)
    return (
        f'<!doctype html>\n<html lang="{html.escape(t.lang)}" dir="{html.escape(t.dir)}">'
        '<head><meta charset="utf-8"></head>\n'
        '<body style="font:16px/1.5 system-ui,sans-serif;color:#1d1b2a;max-width:560px">\n'
        f"{body}\n</body></html>\n"
    )


def _escape_with_links(line: str, by_marker: dict[str, str], urls: dict[str, str]) -> str:
    """A line of text, escaped; a link that shares its line with words becomes an anchor."""
    pieces = line.split("\x00")
    out = []
    for i, piece in enumerate(pieces):
        marker = f"\x00{piece}\x00"
        if i % 2 == 1 and marker in by_marker:
            url = html.escape(urls[by_marker[marker]])
            out.append(f'<a href="{url}">{url}</a>')
        else:
            out.append(html.escape(piece))
    return "".join(out)
