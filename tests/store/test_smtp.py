"""The SMTP sender against real aiosmtpd servers on 127.0.0.1: plain to loopback, STARTTLS and
implicit TLS with a verified certificate, and which failures are permanent, which transient,
without an address in any of them. The URL policy (STARTTLS required off this machine) is
tested directly: no test reaches another host."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from server.store import smtp
from server.store.smtp import PermanentMailError, SmtpSender, SmtpTarget, TransientMailError

TO = "zt.smtp-recipient@example.org"
FROM = "petitions@example.net"


# --- Real SMTP servers for the tests ----------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that accepts everything, or answers `reply` at `refuse_at`."""

    def __init__(self, refuse_at: str = "", reply: str = "") -> None:
        self.refuse_at, self.reply = refuse_at, reply
        self.received: list[bytes] = []
        self.recipients: list[str] = []
        self.tls: list[bool] = []  # per mail: did it arrive over TLS

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_at == "MAIL":
            return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_at == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_at == "DATA":
            return self.reply
        self.received.append(envelope.original_content or b"")
        self.recipients.extend(envelope.rcpt_tos)
        self.tls.append(session.ssl is not None)
        return "250 Message accepted"


@contextlib.asynccontextmanager
async def smtp_server(
    handler: Any,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    port: int = 0,
    **options: Any,
) -> AsyncIterator[int]:
    """A real aiosmtpd server on 127.0.0.1 and `port` (0: a free one), on the running loop:
    its port."""
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(handler, hostname="test.localhost", tls_context=starttls, loop=loop, **options)

    server = await loop.create_server(protocol, "127.0.0.1", port, ssl=implicit_tls)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(to: str = TO) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = f"Signature confirmation <{FROM}>", to, "Hello"
    m.set_content("https://petitions.example.net/confirm/x\n")
    return m


def plain(port: int, **options: Any) -> SmtpSender:
    return SmtpSender(SmtpTarget("127.0.0.1", port, "plain"), **options)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that verifies as in production, trusting only the test's certificate."""
    return ssl.create_default_context(cafile=str(certificate[0]))


# --- The URL's policy -------------------------------------------------------------------------


def test_smtp_to_another_host_requires_starttls() -> None:
    target = smtp.parse_url("smtp://user%40example.net:p%3Ass@mail.example.net:587")
    assert target == SmtpTarget("mail.example.net", 587, "starttls", "user@example.net", "p:ss")
    assert smtp.parse_url("smtp://mail.example.net").port == 587
    # A private address is another machine, reached over a network: STARTTLS too.
    for host in ("10.0.0.5", "192.168.1.2", "[fd00::1]", "mail.localhost.example.net"):
        assert smtp.parse_url(f"smtp://{host}:25").security == "starttls", host


def test_smtp_to_a_loopback_address_may_be_plain() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "[::1]", "relay.localhost"):
        assert smtp.parse_url(f"smtp://{host}:2525").security == "plain", host
    assert smtp.parse_url("smtp://localhost").port == 25


def test_smtps_is_tls_from_the_start() -> None:
    assert smtp.parse_url("smtps://u:p@mail.example.net") == SmtpTarget(
        "mail.example.net", 465, "tls", "u", "p"
    )
    assert smtp.parse_url("smtps://127.0.0.1:4650").security == "tls"  # even to loopback


def test_other_urls_are_refused_and_the_password_is_never_shown() -> None:
    for url in ("http://mail.example.net", "smtp://", "smtp://host:port"):
        with pytest.raises(ValueError):
            smtp.parse_url(url)
    target = smtp.parse_url("smtp://user:hunter2-secret@mail.example.net")
    assert "hunter2-secret" not in repr(target)
    assert "hunter2-secret" not in repr(SmtpSender(target).target)


# --- Sending ----------------------------------------------------------------------------------


def test_plain_send_to_loopback_arrives() -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port:
            await plain(port).send(message())
        assert handler.recipients == [TO]
        assert b"Subject: Hello" in handler.received[0]
        assert handler.tls == [False]

    asyncio.run(check())


def test_starttls_is_used_and_the_certificate_verified(certificate: tuple[Path, Path]) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler, starttls=server_context(certificate)) as port:
            target = SmtpTarget("127.0.0.1", port, "starttls")
            await SmtpSender(target, tls_context=trusting(certificate)).send(message())
            assert handler.tls == [True]
            # The same server with the default trust store: its certificate does not verify.
            with pytest.raises(TransientMailError):
                await SmtpSender(target).send(message())
        assert len(handler.received) == 1

    asyncio.run(check())


def test_starttls_required_sends_nothing_to_a_server_without_it(
    certificate: tuple[Path, Path],
) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port:  # no STARTTLS offered
            target = SmtpTarget("127.0.0.1", port, "starttls", "user", "secret")
            with pytest.raises(TransientMailError):
                await SmtpSender(target, tls_context=trusting(certificate)).send(message())
        assert handler.received == []

    asyncio.run(check())


def test_smtps_sends_over_tls_from_the_start(certificate: tuple[Path, Path]) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler, implicit_tls=server_context(certificate)) as port:
            target = SmtpTarget("127.0.0.1", port, "tls")
            await SmtpSender(target, tls_context=trusting(certificate)).send(message())
            with pytest.raises(TransientMailError):  # an unknown certificate: not sent
                await SmtpSender(target).send(message())
        assert handler.recipients == [TO]

    asyncio.run(check())


def test_login_after_starttls_and_a_refused_login_is_transient(
    certificate: tuple[Path, Path],
) -> None:
    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"u", b"right")
        return AuthResult(success=ok, handled=False)

    async def check() -> None:
        handler = Recorder()
        context = server_context(certificate)
        async with smtp_server(handler, starttls=context, authenticator=authenticator) as port:
            good = SmtpTarget("127.0.0.1", port, "starttls", "u", "right")
            await SmtpSender(good, tls_context=trusting(certificate)).send(message())
            bad = SmtpTarget("127.0.0.1", port, "starttls", "u", "wrong")
            with pytest.raises(TransientMailError) as refused:
                await SmtpSender(bad, tls_context=trusting(certificate)).send(message())
            assert refused.value.code == 535
        assert len(handler.received) == 1

    asyncio.run(check())


# --- Which failures are permanent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("refuse_at", "reply", "permanent"),
    [
        ("RCPT", f"550 5.1.1 <{TO}>: Recipient address rejected: User unknown", True),
        ("RCPT", f"451 4.7.1 <{TO}>: greylisted, try again later", False),
        ("RCPT", "452 4.2.2 mailbox full", False),
        ("MAIL", "553 5.7.1 sender not allowed", True),
        ("MAIL", "421 4.3.2 shutting down", False),
        ("DATA", f"554 5.7.1 message to <{TO}> rejected as spam", True),
        ("DATA", "451 4.3.0 local error in processing", False),
    ],
)
def test_refusals_are_classified_and_quote_no_address(
    refuse_at: str, reply: str, permanent: bool
) -> None:
    async def check() -> None:
        handler = Recorder(refuse_at, reply)
        async with smtp_server(handler) as port:
            with pytest.raises((PermanentMailError, TransientMailError)) as failed:
                await plain(port).send(message())
        error = failed.value
        assert isinstance(error, PermanentMailError) is permanent
        assert error.code == int(reply[:3])
        for text in (str(error), repr(error), repr(error.args)):
            assert TO not in text and "smtp-recipient" not in text
        assert error.__suppress_context__  # the library's exception, which quotes, is not shown

    asyncio.run(check())


def test_a_server_that_is_down_is_transient() -> None:
    async def check() -> None:
        with pytest.raises(TransientMailError):
            await plain(free_port()).send(message())

    asyncio.run(check())


def test_a_server_that_never_answers_times_out() -> None:
    async def check() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransientMailError) as failed:
                await plain(port, timeout=0.5).send(message())
            assert failed.value.kind == "timeout"
            assert asyncio.get_running_loop().time() - started < 5
        finally:
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    asyncio.run(check())


def test_the_send_timeout_is_fifteen_seconds() -> None:
    assert smtp.SEND_TIMEOUT == 15.0
    assert SmtpSender.from_url("smtp://127.0.0.1:2525").timeout == 15.0
