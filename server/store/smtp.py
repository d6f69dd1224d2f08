"""Sending mail: one SMTP client (aiosmtplib) behind the `Sender` interface the mail job uses.

Why aiosmtplib and not the standard library's `smtplib` in a thread: the server runs on one
event loop, and so does the mail job. `smtplib` blocks, so each send would need a thread of
its own (`asyncio.to_thread`), and a mail server that stops answering would hold that thread
until a socket timeout, which `smtplib` applies per read, not per send; a thread cannot be
cancelled either, so a stopping worker would wait for it. aiosmtplib speaks SMTP on the loop
itself: no thread per mail, a whole send cut off by `asyncio.timeout` (`SEND_TIMEOUT`, 15 s)
like any other coroutine, and cancelled cleanly when the job stops. It also does STARTTLS and
implicit TLS with the standard `ssl` module's verified default context.

One connection carries a batch (`SmtpSender.connection()`, which the mail job opens around
each batch it claims): connect, TLS and login once, then MAIL, RCPT and DATA per mail, QUIT at
the end. Each mail comes as `mail.Mail`, bytes and envelope, so the client neither flattens a
message nor parses addresses back out of its headers. A mail refused is followed by RSET,
and the next mail goes on the same connection. A connection the server
closes between two mails (an idle timeout, a limit of mails per connection, `421`) is opened
again once for the mail that found it closed; that mail may then arrive twice if the server
had in fact taken it, which at-least-once delivery allows. A mail whose send fails any other
way (a timeout above all, after which the connection's state is unknown) leaves its connection
closed, and the next mail opens a new one.

Transport security follows `SMTP_URL`:

- `smtp://user:pass@host:587`: STARTTLS is required, and the server's certificate must verify
  for `host`; a server that offers no STARTTLS gets nothing, not even the login. Only to a
  loopback address (127.0.0.0/8, ::1, `localhost`: a relay on the same machine) is plain SMTP
  allowed, since the mail never crosses a network there.
- `smtps://user:pass@host:465`: TLS from the first byte, verified the same way.

Failures are classified for the outbox, per mail: a 5xx reply to MAIL, RCPT or DATA is the mail
server's final word about this mail (`PermanentMailError`: the job gives the row up), and so is
a mail to an address with a non-ASCII local part (`Mail.smtputf8`) when the server does not
announce SMTPUTF8, since there is no ASCII form to send it to (`no_smtputf8`); anything else
(no connection, a timeout, TLS, a 4xx "try later", a refused login or greeting, which are the
server's or our configuration's state and not this mail's) is `TransientMailError`, tried again.
A login that fails is transient on purpose: a wrong password must delay mails, not drop them.

No exception raised from here and no log line carries an address: aiosmtplib's exceptions quote
the recipient (`SMTPRecipientRefused.recipient`, and in their messages), so they are replaced
(`from None`) by ours, which hold only the reply code and the kind of failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import aiosmtplib

from server.domain.errors import PetitionWidgetError
from server.domain.mail import Mail

# Seconds for one mail: MAIL, RCPT and DATA, with connect, TLS and login when it opens the
# connection.
SEND_TIMEOUT = 15.0
QUIT_TIMEOUT = 2.0  # seconds for the goodbye at a batch's end: its mails are sent already
# An envelope address as `mail.render` makes them: nothing that could end or extend a command.
_PLAIN = re.compile(r"[^\s<>]+@[^\s<>]+")

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
    """This mail cannot go, ever: the server refused it (5xx to MAIL, RCPT or DATA, `code`), or
    it needs SMTPUTF8, which the server lacks (`code` None)."""

    def __init__(self, code: int | None, kind: str = "refused") -> None:
        super().__init__(kind, code)


class Connection(Protocol):
    """Mails sent one after the other, on one connection while it lasts."""

    async def send(self, mail: Mail) -> None: ...


class Sender(Protocol):
    """What the mail job sends through: the SMTP client here, or a test's stand-in."""

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...


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
    """Sends mails over SMTP, a batch on one connection (`connection()`), or one alone
    (`send`)."""

    def __init__(
        self,
        target: SmtpTarget,
        *,
        timeout: float = SEND_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        # None: `ssl.create_default_context()`, which verifies the certificate and the host
        # name; made once (reading the system's authorities takes milliseconds), not per
        # connection as aiosmtplib would. A test passes one that trusts its own authority.
        self.tls_context = tls_context
        # Our name in EHLO: aiosmtplib would look it up (socket.getfqdn, in a thread) for
        # every connection; it is kept from the first.
        self.local_hostname: str | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = SEND_TIMEOUT) -> SmtpSender:
        return cls(parse_url(url), timeout=timeout)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[SmtpConnection]:
        """A connection for a batch of mails: opened by its first mail, closed (QUIT) at the
        end of the block."""
        connection = SmtpConnection(self)
        try:
            yield connection
        finally:
            await connection.close()

    async def send(self, mail: Mail) -> None:
        """Send one mail on a connection of its own (see `SmtpConnection.send`)."""
        async with self.connection() as connection:
            await connection.send(mail)


class SmtpConnection:
    """One SMTP connection, opened by the first mail, kept for the next ones (see the module
    docstring for when it is opened again)."""

    def __init__(self, sender: SmtpSender) -> None:
        self._sender = sender
        self._client: aiosmtplib.SMTP | None = None
        self.opened = 0  # connections opened so far (a figure for tests and logs)

    async def send(self, mail: Mail) -> None:
        """Send `mail` to its recipient, from its sender, within the sender's timeout. Raises
        `PermanentMailError` or `TransientMailError`, never an exception that quotes an
        address."""
        try:
            async with asyncio.timeout(self._sender.timeout):
                await self._send(mail)
        except MailError:
            raise
        except Exception as exc:
            # A refusal leaves the connection as it was (after RSET); anything else leaves it
            # in a state nobody knows, so the next mail gets a new one.
            client = self._client
            if not (_is_refusal(exc) and client is not None and client.is_connected):
                self._drop()
            raise classify(exc) from None
        except BaseException:
            self._drop()  # cancelled mid-mail: no QUIT on a connection in an unknown state
            raise

    async def close(self) -> None:
        """Say goodbye (QUIT), briefly: the mails are sent already, so a failure here changes
        nothing, and the connection is closed either way."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(QUIT_TIMEOUT):
                await client.quit()
        except Exception:  # noqa: S110 - the goodbye of a connection whose work is done
            pass
        finally:
            client.close()

    async def _send(self, mail: Mail) -> None:
        reused = self._client is not None
        client = self._client if self._client is not None else await self._open()
        try:
            await _transaction(client, mail)
        except Exception as exc:
            if not reused or client.is_connected or isinstance(exc, MailError):
                raise
            if isinstance(classify(exc), PermanentMailError):
                raise  # the server's last word about this mail, even as it hung up
            # The server closed a connection that had carried mails before: once more, on a
            # new one.
            self._drop()
            await _transaction(await self._open(), mail)

    async def _open(self) -> aiosmtplib.SMTP:
        """A new client, connected, through TLS and logged in as the target says."""
        sender, target = self._sender, self._sender.target
        if sender.tls_context is None and target.security != "plain":
            sender.tls_context = await asyncio.to_thread(ssl.create_default_context)
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.security == "tls",
            start_tls=target.security == "starttls",
            validate_certs=True,
            tls_context=sender.tls_context,
            local_hostname=sender.local_hostname,
            timeout=sender.timeout,
        )
        try:
            await client.connect()
            if client.last_ehlo_response is None:  # no TLS nor login asked for one
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()  # a server from before ESMTP
        except BaseException:
            client.close()
            raise
        sender.local_hostname = client.local_hostname
        self._client = client
        self.opened += 1
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


async def _transaction(client: aiosmtplib.SMTP, mail: Mail) -> None:
    """MAIL, RCPT and DATA of one mail, sent as the bytes it is, then RSET if it was refused.

    The commands are written here rather than by `SMTP.sendmail`, which parses each address
    four times with `email.utils.parseaddr` (a sixth of the mail job's time) and puts every
    reply under an `asyncio.wait_for` of its own: a `Mail`'s addresses are plain already
    (`mail.render` checks them), and `SmtpConnection.send` bounds the whole mail."""
    if not (_PLAIN.fullmatch(mail.sender) and _PLAIN.fullmatch(mail.recipient)):
        raise ValueError("not a plain address")  # never from mail.render: a bug of ours
    options: list[bytes] = []
    if client.supports_extension("size"):
        options.append(b"SIZE=%d" % len(mail.data))
    if mail.smtputf8:
        if not client.supports_extension("smtputf8"):
            raise PermanentMailError(None, "no_smtputf8")
        options.append(b"SMTPUTF8")
    encoding = "utf-8" if mail.smtputf8 else "ascii"
    try:
        sender = b"FROM:<" + mail.sender.encode(encoding) + b">"
        reply = await client.execute_command(b"MAIL", sender, *options, timeout=None)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, mail.sender)
        recipient = b"TO:<" + mail.recipient.encode(encoding) + b">"
        reply = await client.execute_command(b"RCPT", recipient, timeout=None)
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, mail.recipient)
        await client.data(mail.data, timeout=None)
    except aiosmtplib.SMTPResponseException:
        # The envelope is reset for the next mail on this connection.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException):
            await client.rset(timeout=None)
        raise


def _is_refusal(exc: BaseException) -> bool:
    """A reply to MAIL, RCPT or DATA: the server answered, and the connection goes on."""
    return isinstance(
        exc,
        aiosmtplib.SMTPRecipientsRefused
        | aiosmtplib.SMTPRecipientRefused
        | aiosmtplib.SMTPSenderRefused
        | aiosmtplib.SMTPDataError,
    )


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
