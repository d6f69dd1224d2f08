"""Sending mail: one SMTP client (aiosmtplib) behind the `Sender` interface the mail job uses.

Why aiosmtplib and not the standard library's `smtplib` in a thread: the server runs on one
event loop, and so does the mail job. `smtplib` blocks, so each send would need a thread of
its own (`asyncio.to_thread`), and a mail server that stops answering would hold that thread
until a socket timeout, which `smtplib` applies per read, not per send; a thread cannot be
cancelled either, so a stopping worker would wait for it. aiosmtplib speaks SMTP on the loop
itself: no thread per mail, a whole send cut off by `asyncio.timeout` (`SEND_TIMEOUT`, 15 s)
like any other coroutine, and cancelled cleanly when the job stops. It also does STARTTLS and
implicit TLS with the standard `ssl` module's verified default context.

Transport security follows `SMTP_URL`:

- `smtp://user:pass@host:587`: STARTTLS is required, and the server's certificate must verify
  for `host`; a server that offers no STARTTLS gets nothing, not even the login. Only to a
  loopback address (127.0.0.0/8, ::1, `localhost`: a relay on the same machine) is plain SMTP
  allowed, since the mail never crosses a network there.
- `smtps://user:pass@host:465`: TLS from the first byte, verified the same way.

Failures are classified for the outbox: a 5xx reply to MAIL, RCPT or DATA is the mail server's
final word about this mail (`PermanentMailError`: the job gives the row up); anything else
(no connection, a timeout, TLS, a 4xx "try later", a refused login or greeting, which are the
server's or our configuration's state and not this mail's) is `TransientMailError`, tried again.
A login that fails is transient on purpose: a wrong password must delay mails, not drop them.

No exception raised from here and no log line carries an address: aiosmtplib's exceptions quote
the recipient (`SMTPRecipientRefused.recipient`, and in their messages), so they are replaced
(`from None`) by ours, which hold only the reply code and the kind of failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import ssl
import urllib.parse
from email.message import EmailMessage
from typing import Literal, Protocol

import aiosmtplib

from server.domain.errors import PetitionWidgetError

SEND_TIMEOUT = 15.0  # seconds for one whole send: connect, TLS, login, MAIL, RCPT, DATA, QUIT

Security = Literal["tls", "starttls", "plain"]


class MailError(PetitionWidgetError):
    """A mail was not sent. `kind` names the failure (an exception type, or a reply's role) and
    `code` the server's reply code when there was one; neither can quote an address."""

    def __init__(self, kind: str, code: int | None = None) -> None:
        super().__init__(kind if code is None else f"{kind} {code}")
        self.kind = kind
        self.code = code


class TransientMailError(MailError):
    """Try again later: the server is unreachable or slow, or said "not now" (4xx)."""


class PermanentMailError(MailError):
    """The server refused this mail for good (5xx to MAIL, RCPT or DATA)."""

    code: int

    def __init__(self, code: int, kind: str = "refused") -> None:
        super().__init__(kind, code)


class Sender(Protocol):
    """What the mail job sends through: the SMTP client here, or a test's stand-in."""

    async def send(self, message: EmailMessage) -> None: ...


@dataclasses.dataclass(frozen=True)
class SmtpTarget:
    """Where and how mail leaves, read from `SMTP_URL` by `parse_url`."""

    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def parse_url(url: str) -> SmtpTarget:
    """`smtp://user:pass@host:587` or `smtps://user:pass@host:465` as a target, with the
    transport security policy in the module docstring. Raises ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL has a port that is not a number") from None
    host = parts.hostname
    security: Security = "tls" if parts.scheme == "smtps" else "starttls"
    if security == "starttls" and is_loopback(host):
        security = "plain"  # a relay on this machine: the mail crosses no network
    default_port = {"tls": 465, "starttls": 587, "plain": 25}[security]
    unquote = urllib.parse.unquote
    return SmtpTarget(
        host=host,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1 (no DNS lookup)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class SmtpSender:
    """Sends each mail on a connection of its own (connect, TLS, login, send, quit)."""

    def __init__(
        self,
        target: SmtpTarget,
        *,
        timeout: float = SEND_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        # None: aiosmtplib's default, `ssl.create_default_context()`, which verifies the
        # certificate and the host name. A test passes one that trusts its own authority.
        self.tls_context = tls_context

    @classmethod
    def from_url(cls, url: str, *, timeout: float = SEND_TIMEOUT) -> SmtpSender:
        return cls(parse_url(url), timeout=timeout)

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to its `To`, from its `From`. Raises `PermanentMailError` or
        `TransientMailError`, never an exception that quotes an address."""
        target = self.target
        try:
            async with asyncio.timeout(self.timeout):
                await aiosmtplib.send(
                    message,
                    hostname=target.host,
                    port=target.port,
                    username=target.username,
                    password=target.password,
                    use_tls=target.security == "tls",
                    start_tls=target.security == "starttls",
                    validate_certs=True,
                    tls_context=self.tls_context,
                    timeout=self.timeout,
                )
        except Exception as exc:
            raise classify(exc) from None


def classify(exc: BaseException) -> MailError:
    """Our error for what aiosmtplib (or the network, or the timeout) raised."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        if codes and all(code >= 500 for code in codes):
            return PermanentMailError(codes[0], "recipient_refused")
        return TransientMailError("recipient_refused", codes[0] if codes else None)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPSenderRefused):
        kind = (
            "recipient_refused"
            if isinstance(exc, aiosmtplib.SMTPRecipientRefused)
            else ("sender_refused")
        )
        return _by_code(exc.code, kind)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _by_code(exc.code, "data_refused")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # A refused greeting, EHLO or login: the server's or our settings' state, not this mail's.
        return TransientMailError(type(exc).__name__, exc.code)
    if isinstance(exc, TimeoutError):
        return TransientMailError("timeout")
    return TransientMailError(type(exc).__name__)


def _by_code(code: int, kind: str) -> MailError:
    if code >= 500:
        return PermanentMailError(code, kind)
    return TransientMailError(kind, code)
