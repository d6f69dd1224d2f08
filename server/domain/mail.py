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

Why the bytes are written here and not by `email.message.EmailMessage`: a surge of signers is
a surge of mails, sent from the event loop that also takes signatures. Through `EmailMessage`
(default policy: header objects parsed and folded, a class built per header access, the
transfer-encoding heuristics, then the SMTP client flattening it again and parsing the
addresses back out) a mail cost about 2 ms of CPU. Almost none of it depends on the
recipient: what a mail says depends on the petition's texts, the language and the kind, so
`_template` makes that part once (headers encoded, bodies laid out with a slot per link, the
transfer encoding chosen) and `render` only fills in the address, the two links, `Date` and
`Message-ID`, and encodes the bodies (`binascii`, in C): some 30 µs. The result, `Mail`, is the
message's bytes with its envelope, which the SMTP client sends as they are. What the standard
library still does, it does once per template: RFC 2047 encoded words for a non-ASCII sender
name or subject (`email.header.Header`, folded to 76 columns).

On the wire: headers in ASCII (unless the recipient's local part is not ASCII, see below),
lines of at most 76 characters, `multipart/alternative` with `text/plain` then `text/html`,
both UTF-8 in a 7-bit transfer encoding (quoted-printable when the text is mostly ASCII, as
English is: it stays readable in the raw source; base64 when that is shorter, as for Russian).
The boundary starts with `=_`, which neither encoding can produce, so it never occurs in a body.

Addresses with a non-ASCII domain (`anna@öbb.at`) are sent to, and named in `To`, by the
domain's ASCII form under IDNA 2008 and UTS-46 (`anna@xn--bb-eka.at`), as email-validator
gives it: every mail server takes that. A non-ASCII local part (`юзер@пример.рф`) has no ASCII
form: such a mail needs a server that announces SMTPUTF8 (RFC 6531), with the address in
UTF-8 in the envelope and in `To` (RFC 6532); `Mail.smtputf8` says so, and the sender refuses
it for good when the server cannot take it.

Pure: no network, no storage. `now` is passed in so a test (or a clock) fixes the `Date`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email
import email.policy
import email.utils
import functools
import html
import math
import re
import secrets
import time
from collections.abc import Mapping
from email.header import Header
from email.message import EmailMessage
from typing import Any, TypeGuard

import email_validator

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
_QP, _BASE64 = "quoted-printable", "base64"
# What `To` may hold: one address, and nothing that could end the header or start another.
# What `email.utils.formataddr` quotes a display name for.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ADDRESS = re.compile(r'[^\s<>()\[\]\\,;:"@\x00-\x1f\x7f]+@[^\s<>()\[\]\\,;:"@\x00-\x1f\x7f]+')


@dataclasses.dataclass(frozen=True)
class Mail:
    """A mail as it goes to the SMTP server: the envelope and the message's bytes (CRLF line
    ends, as DATA sends them). The address and the bytes are left out of `repr`, so a mail that
    ends up in an assertion or a log line shows no signer."""

    sender: str  # MAIL FROM
    recipient: str = dataclasses.field(repr=False)  # RCPT TO, as `To` names it
    data: bytes = dataclasses.field(repr=False)
    smtputf8: bool = False  # an address is not ASCII: only a server with SMTPUTF8 can take it

    def message(self) -> EmailMessage:
        """The mail parsed back by the standard library, as a mail client reads it: line ends
        translated to the local `\\n` (a base64 body keeps the CRLF line breaks it encodes)."""
        parsed = email.message_from_bytes(
            self.data.replace(b"\r\n", b"\n"), policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        return parsed


def render(
    payload: Mapping[str, Any],
    entry_or_petition: Entry | Petition,
    *,
    base_url: str,
    mail_from: str,
    confirm_lifetime: int,
    now: float | None = None,
) -> Mail:
    """The mail an outbox row's `payload` asks for, about `entry_or_petition`, ready to send.

    Raises BadPayload when the payload is not one we write (an unknown kind, a missing or
    malformed address or token): such a row can never be sent."""
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
    recipient, utf8 = _on_the_wire(to)

    lang = payload.get("lang")
    lang = lang if isinstance(lang, str) and lang in petition.texts else petition.lang
    texts = petition.in_language(lang)
    days = max(1, math.ceil(confirm_lifetime / DAY)) if kind == CONFIRM else 0
    template = _template(
        kind,
        lang,
        texts.title,
        texts.mail_from_name,
        texts.mail_subject,
        base_url.rstrip("/"),
        mail_from,
        days,
    )
    urls = {links.WITHDRAW: template.base + links.path(links.WITHDRAW, withdraw)}
    if confirm is not None:
        urls[links.CONFIRM] = template.base + links.path(links.CONFIRM, confirm)
    return template.fill(recipient, utf8, urls, time.time() if now is None else now)


def compose(
    payload: Mapping[str, Any],
    entry_or_petition: Entry | Petition,
    *,
    base_url: str,
    mail_from: str,
    confirm_lifetime: int,
    now: float | None = None,
) -> EmailMessage:
    """The mail `render` makes, parsed back as a reader sees it: for tests and for anything
    that reads a mail rather than sends it. Raises BadPayload as `render` does."""
    return render(
        payload,
        entry_or_petition,
        base_url=base_url,
        mail_from=mail_from,
        confirm_lifetime=confirm_lifetime,
        now=now,
    ).message()


@dataclasses.dataclass(frozen=True)
class _Template:
    """What every mail of one kind, language and petition text shares, made once."""

    base: str  # BASE_URL without its trailing slash
    sender: str  # the envelope's sender: MAIL_FROM with its domain in ASCII
    sender_utf8: bool  # MAIL_FROM's local part is not ASCII
    msgid_domain: bytes
    from_line: bytes  # "From: ...\r\n", its name encoded
    after_to: bytes  # "Subject: ...\r\n", folded and encoded
    mime: bytes  # the rest of the headers and the text part's own, up to its body
    between: bytes  # the end of the text part and the HTML part's headers
    end: bytes  # the closing boundary
    text: str  # the plain text, "\n" line ends, a slot where each link goes
    text_cte: str
    html: str
    html_cte: str

    def fill(self, recipient: str, utf8: bool, urls: dict[str, str], now: float) -> Mail:
        text, page = self.text, self.html
        for name, url in urls.items():
            slot = _SLOT.format(name)
            text = text.replace(slot, url)
            page = page.replace(slot, html.escape(url))
        msgid = secrets.token_hex(16).encode()
        data = b"".join(
            (
                self.from_line,
                b"To: ",
                recipient.encode(),
                b"\r\n",
                self.after_to,
                b"Date: ",
                email.utils.formatdate(now, usegmt=True).encode(),
                b"\r\nMessage-ID: <",
                msgid,
                b"@",
                self.msgid_domain,
                b">\r\n",
                self.mime,
                _encode(text, self.text_cte),
                self.between,
                _encode(page, self.html_cte),
                self.end,
            )
        )
        return Mail(self.sender, recipient, data, smtputf8=utf8 or self.sender_utf8)


@functools.lru_cache(maxsize=256)
def _template(
    kind: str,
    lang: str,
    title: str,
    from_name: str,
    subject: str,
    base: str,
    mail_from: str,
    days: int,
) -> _Template:
    """The shared part of a mail. Its key is everything it is made from, so a petition edited
    and imported again gets a new template, never a stale one."""
    if "@" not in mail_from:
        raise BadPayload("MAIL_FROM must be an address")
    sender, sender_utf8 = _on_the_wire(mail_from)
    t = i18n.catalog(lang)
    # Paragraphs with a slot where each link goes; the text and HTML parts fill them alike.
    slot = {name: _SLOT.format(name) for name in (links.CONFIRM, links.WITHDRAW)}
    if kind == CONFIRM:
        opening = t("mail_confirm", title=title, confirm_url=slot[links.CONFIRM], days=days)
        default_subject = t("mail_subject")
    else:
        opening = t("mail_already", title=title)
        default_subject = t("mail_subject_signed")
    paragraphs = [
        *opening.split("\n\n"),
        *t("mail_withdraw", withdraw_url=slot[links.WITHDRAW]).split("\n\n"),
        t("mail_why"),
    ]
    buttons = {links.CONFIRM: t("mail_button_confirm"), links.WITHDRAW: t("mail_button_withdraw")}
    # The slots stand in for the URLs: `_html` escapes them, which leaves them as they are.
    text = _lines(_plain(paragraphs, slot, slot))
    page = _lines(_html(paragraphs, slot, slot, buttons, t))

    boundary = "=_" + secrets.token_hex(12)
    name = _one_line(from_name or t("mail_from_name"))
    domain = sender.rpartition("@")[2]
    part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: {}\r\n\r\n'
    text_cte, html_cte = _transfer_encoding(text), _transfer_encoding(page)
    return _Template(
        base=base,
        sender=sender,
        sender_utf8=sender_utf8,
        msgid_domain=domain.encode(),
        from_line=f"From: {_mailbox(name, sender)}\r\n".encode(),
        after_to=_header("Subject", _one_line(subject or default_subject)),
        mime=(
            "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n" + part.format("plain", text_cte)
        ).encode(),
        between=(f"--{boundary}\r\n" + part.format("html", html_cte)).encode(),
        end=f"--{boundary}--\r\n".encode(),
        text=text,
        text_cte=text_cte,
        html=page,
        html_cte=html_cte,
    )


def _on_the_wire(address: str) -> tuple[str, bool]:
    """An address as the envelope and `To` carry it: its domain in ASCII (IDNA 2008, UTS-46),
    and whether its local part still needs SMTPUTF8. BadPayload for anything that is not one
    plain address (a stored row we never wrote)."""
    if not _ADDRESS.fullmatch(address):
        raise BadPayload("not an address")
    if address.isascii():  # nearly every address: nothing to do
        return address, False
    local, _, domain = address.rpartition("@")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        raise BadPayload("a domain with no ASCII form")
    return f"{local}@{ascii_domain}", not local.isascii()


@functools.lru_cache(maxsize=1024)
def _ascii_domain(domain: str) -> str | None:
    """A domain's ASCII form as email-validator gives it (the rules signing checked it by);
    None when it has none. Only domains are cached here, never an address."""
    try:
        checked = email_validator.validate_email(
            f"a@{domain}", check_deliverability=False, allow_smtputf8=True
        )
    except email_validator.EmailNotValidError:
        return None
    return str(checked.ascii_domain)


def _mailbox(name: str, address: str) -> str:
    """`name <address>`: the name as it is when it is short plain ASCII (quoted if it holds
    specials, as `email.utils.formataddr` does), else as RFC 2047 encoded words."""
    if name.isascii() and name.isprintable() and len(name) <= 60:
        if _SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{address}>"
    encoded = Header(name, "utf-8", header_name="From").encode(linesep="\r\n")
    # The address goes on a line of its own when the last encoded word leaves no room for it.
    fits = len(encoded.rpartition("\n")[2]) + len(address) + 3 <= 76
    separator = " " if fits else "\r\n "
    return f"{encoded}{separator}<{address}>"


def _header(name: str, value: str) -> bytes:
    """A header line: ASCII folded at spaces, anything else as encoded words, 76 columns. An
    ASCII word too long to fold goes as encoded words too, which can be split anywhere."""
    folded = Header(value, header_name=name).encode(linesep="\r\n")
    if max(len(line) for line in folded.split("\r\n")) > 900:
        folded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}\r\n".encode()


def _one_line(value: str) -> str:
    """A header's text on one line: a line break in a petition file's subject must not start a
    header of its own."""
    return " ".join(value.split())


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _transfer_encoding(text: str) -> str:
    """Quoted-printable, unless base64 is shorter (text mostly in another script). Measured
    on the template: the links that fill it are ASCII and the same length for every mail."""
    data = text.encode("utf-8")
    if data.isascii():
        return _QP
    return _QP if len(binascii.b2a_qp(data, istext=True)) <= len(data) * 4 // 3 else _BASE64


def _encode(text: str, cte: str) -> bytes:
    """A body in its transfer encoding, CRLF line ends, lines of at most 76 characters. Text
    is encoded in its canonical form (RFC 2046: CRLF line breaks) in both."""
    data = text.replace("\n", "\r\n").encode("utf-8")
    if cte == _QP:
        # In C; CRLF in, CRLF out (soft breaks included); a trailing space or a lone "." on a
        # line is encoded too.
        return binascii.b2a_qp(data, istext=True)
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


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
