"""The SMTP sender against real aiosmtpd servers on 127.0.0.1: plain to loopback, STARTTLS and
implicit TLS with a verified certificate, and which failures are permanent, which transient,
without an address in any of them; a batch of mails on one connection, a refusal or a dropped
connection in the middle of it; SMTPUTF8 for a non-ASCII local part. The URL policy (STARTTLS
required off this machine) is tested directly: no test reaches another host."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from server.domain import links
from server.domain.mail import Mail, render
from server.store import smtp
from server.store.smtp import PermanentMailError, SmtpSender, SmtpTarget, TransientMailError
from tests.support import petitions

TO = "zt.smtp-recipient@example.org"
FROM = "petitions@example.net"


# --- Real SMTP servers for the tests ----------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that accepts everything, or answers `reply` at `refuse_at` (to
    every recipient, or only to those in `refuse`). `drop_after` mails on a connection, the
    server closes it; `limit_after`, it answers MAIL with 421 (a limit per connection)."""

    def __init__(
        self,
        refuse_at: str = "",
        reply: str = "",
        *,
        refuse: frozenset[str] = frozenset(),
        drop_after: int = 0,
        limit_after: int = 0,
    ) -> None:
        self.refuse_at, self.reply, self.refuse = refuse_at, reply, refuse
        self.drop_after, self.limit_after = drop_after, limit_after
        self.received: list[bytes] = []
        self.recipients: list[str] = []
        self.tls: list[bool] = []  # per mail: did it arrive over TLS
        self.peers: list[object] = []  # per mail: the client's end of its connection
        self.mail_options: list[list[str]] = []  # per mail: the options of its MAIL
        self.rsets = 0
        self.quits = 0

    def refused(self, address: str) -> bool:
        return not self.refuse or address in self.refuse

    def sent_on(self, session: Session) -> int:
        return self.peers.count(session.peer)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_at == "MAIL":
            return self.reply
        if self.limit_after and self.sent_on(session) >= self.limit_after:
            return "421 4.7.0 too many mails on one connection"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_at == "RCPT" and self.refused(address):
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_at == "DATA" and all(self.refused(r) for r in envelope.rcpt_tos):
            return self.reply
        self.received.append(envelope.original_content or b"")
        self.recipients.extend(envelope.rcpt_tos)
        self.tls.append(session.ssl is not None)
        self.peers.append(session.peer)
        self.mail_options.append(list(envelope.mail_options))
        if self.drop_after and self.sent_on(session) >= self.drop_after:
            # After the 250 has gone out: the client sees the connection closed before its
            # next mail.
            transport = server.transport
            assert transport is not None
            asyncio.get_running_loop().call_soon(transport.close)
        return "250 Message accepted"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.rsets += 1
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"

    def connections(self) -> int:
        """How many connections carried the mails received."""
        return len(set(self.peers))


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


def message(to: str = TO) -> Mail:
    data = (
        f"From: Signature confirmation <{FROM}>\r\nTo: {to}\r\nSubject: Hello\r\n\r\n"
        "https://petitions.example.net/confirm/x\r\n"
    )
    return Mail(FROM, to, data.encode())


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


# --- A batch on one connection ----------------------------------------------------------------


def addressed(n: int) -> list[str]:
    return [f"zt.batch-{i}@example.org" for i in range(n)]


def test_a_batch_goes_on_one_connection_with_one_login_and_one_quit(
    certificate: tuple[Path, Path],
) -> None:
    logins: list[bytes] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append(data.login)
        return AuthResult(success=data.password == b"right", handled=False)

    async def check() -> None:
        handler = Recorder()
        context = server_context(certificate)
        async with smtp_server(handler, starttls=context, authenticator=authenticator) as port:
            target = SmtpTarget("127.0.0.1", port, "starttls", "u", "right")
            sender = SmtpSender(target, tls_context=trusting(certificate))
            async with sender.connection() as connection:
                for to in addressed(5):
                    await connection.send(message(to))
                assert handler.quits == 0  # still open for the next mail
            assert connection.opened == 1
        assert handler.recipients == addressed(5)
        assert handler.connections() == 1 and handler.tls == [True] * 5
        assert logins == [b"u"] and handler.quits == 1

    asyncio.run(check())


def test_a_refusal_in_the_middle_of_a_batch_fails_only_that_mail() -> None:
    async def check() -> None:
        refused = addressed(5)[2]
        handler = Recorder("RCPT", f"550 5.1.1 <{refused}>: unknown", refuse=frozenset({refused}))
        async with smtp_server(handler) as port:
            failures: list[Exception] = []
            async with plain(port).connection() as connection:
                for to in addressed(5):
                    try:
                        await connection.send(message(to))
                    except (PermanentMailError, TransientMailError) as failed:
                        failures.append(failed)
            assert connection.opened == 1
        (failure,) = failures
        assert isinstance(failure, PermanentMailError) and failure.code == 550
        assert refused not in str(failure) and refused not in repr(failure.args)
        assert handler.recipients == [to for to in addressed(5) if to != refused]
        assert handler.connections() == 1  # the others went on, on the same connection
        assert handler.rsets == 1  # the refused mail's envelope was reset before the next

    asyncio.run(check())


@pytest.mark.parametrize("how", ["closed", "421"])
def test_a_connection_dropped_in_the_middle_of_a_batch_is_opened_again(how: str) -> None:
    """The server closes each connection after two mails, or answers the third MAIL with 421
    (a limit of mails per connection): every mail still arrives, each once."""

    async def check() -> None:
        handler = Recorder(drop_after=2) if how == "closed" else Recorder(limit_after=2)
        async with smtp_server(handler) as port:
            async with plain(port).connection() as connection:
                for to in addressed(5):
                    await connection.send(message(to))
            assert connection.opened == 3
        assert handler.recipients == addressed(5)
        assert handler.connections() == 3

    asyncio.run(check())


def test_a_mail_cut_off_by_its_timeout_leaves_the_next_a_new_connection() -> None:
    class Stalls(Recorder):
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            if envelope.rcpt_tos == [addressed(3)[1]]:
                await asyncio.sleep(30)  # never answers in time
            return await super().handle_DATA(server, session, envelope)

    async def check() -> None:
        handler = Stalls()
        async with smtp_server(handler) as port:
            outcomes: list[str] = []
            async with plain(port, timeout=0.5).connection() as connection:
                for to in addressed(3):
                    try:
                        await connection.send(message(to))
                        outcomes.append("sent")
                    except TransientMailError as failed:
                        outcomes.append(failed.kind)
            assert connection.opened == 2
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()  # the stalled DATA of the server's first connection
        assert outcomes == ["sent", "timeout", "sent"]
        assert handler.recipients == [addressed(3)[0], addressed(3)[2]]
        assert handler.connections() == 2

    asyncio.run(check())


def test_a_mail_is_sent_as_its_bytes_with_its_envelope() -> None:
    """What DATA carries is the mail's bytes as they are (the client neither re-flattens nor
    re-parses them), and the envelope is the mail's, not read from its headers."""

    async def check() -> None:
        handler = Recorder()
        mail = Mail("bounces@example.net", TO, message("someone-else@example.org").data)
        async with smtp_server(handler) as port:
            await plain(port).send(mail)
        assert handler.recipients == [TO]
        assert handler.received == [mail.data]

    asyncio.run(check())


def test_a_server_from_before_esmtp_gets_helo() -> None:
    class NoEsmtp(Recorder):
        async def handle_EHLO(
            self, server: SMTP, session: Session, envelope: Envelope, name: str, lines: Any
        ) -> list[str]:
            return ["502 5.5.2 no ESMTP here"]

    async def check() -> None:
        handler = NoEsmtp()
        async with smtp_server(handler) as port:
            await plain(port).send(message())
        assert handler.recipients == [TO]

    asyncio.run(check())


# --- Internationalised addresses --------------------------------------------------------------


def rendered(to: str) -> Mail:
    payload = {
        "kind": "already_signed",
        "to": to,
        "lang": "ru",
        "petition_id": 1,
        "withdraw": links.Link.new().token,
    }
    petition = petitions.example("email")
    return render(
        payload, petition, base_url="https://p.example.net", mail_from=FROM, confirm_lifetime=1
    )


def test_a_non_ascii_domain_goes_in_its_ascii_form_to_any_server() -> None:
    async def check() -> None:
        handler = Recorder()
        mail = rendered("Zt.Anna@öbb.at")
        assert not mail.smtputf8
        async with smtp_server(handler) as port:  # no SMTPUTF8 announced
            await plain(port).send(mail)
        assert handler.recipients == ["Zt.Anna@xn--bb-eka.at"]
        assert [o.upper() for o in handler.mail_options[0]] == [f"SIZE={len(mail.data)}"]
        assert b"\r\nTo: Zt.Anna@xn--bb-eka.at\r\n" in handler.received[0]
        assert handler.received[0].isascii()

    asyncio.run(check())


def test_a_non_ascii_local_part_needs_smtputf8() -> None:
    """With SMTPUTF8 the address goes in UTF-8 (domain in ASCII); a server without it can never
    take the mail: refused for good, and the connection serves the next mail."""
    to = "зт.юзер@пример.рф"

    async def check() -> None:
        mail = rendered(to)
        assert mail.smtputf8 and mail.recipient == "зт.юзер@xn--e1afmkfd.xn--p1ai"
        with_it = Recorder()
        async with smtp_server(with_it, enable_SMTPUTF8=True) as port:
            await plain(port).send(mail)
        assert with_it.recipients == [mail.recipient]
        assert "SMTPUTF8" in with_it.mail_options[0]

        without = Recorder()
        async with smtp_server(without) as port:
            async with plain(port).connection() as connection:
                with pytest.raises(PermanentMailError) as refused:
                    await connection.send(mail)
                await connection.send(message())
            assert connection.opened == 1
        assert (refused.value.kind, refused.value.code) == ("no_smtputf8", None)
        assert "юзер" not in str(refused.value) and "юзер" not in repr(refused.value.args)
        assert without.recipients == [TO]

    asyncio.run(check())
