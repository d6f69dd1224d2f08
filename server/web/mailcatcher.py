"""The demo's mail catcher: a real SMTP server on 127.0.0.1 that keeps the mails it is sent.

`petition-widget demo` asks for a confirmation by mail, like a real petition should, so it
needs somewhere to send mails that a newcomer can read without a mail account: this. The app
sends to it exactly as it sends to a real mail server (`store/smtp.py` over SMTP, through the
outbox), so the demo shows the real path, and `/demo/mail` (`web/demo.py`) lists what arrived.

The demo runs the app in this same process (`uvicorn.run` with the app object, one worker), so
the catcher and the page share one `Mailbox`, `MAILBOX`, in memory: nothing is written to disk,
and the last `MAX_KEPT` mails are kept. The catcher runs its own event loop in a thread
(`start_in_thread`), because uvicorn owns the app's loop and creates it only when it starts;
tests start it on theirs (`start`). The mailbox is shared between those threads under a lock.

aiosmtpd logs each recipient's address at INFO (`mail.log`); the demo's logging keeps that
logger at WARNING, like every logger but ours.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import email
import email.policy
import re
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

MAX_KEPT = 100  # mails the mailbox keeps; older ones are forgotten
HOSTNAME = "mailcatcher.localhost"  # what it calls itself in its greeting (no DNS lookup)
_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclasses.dataclass(frozen=True)
class CaughtMail:
    to: str
    subject: str
    date: str
    text: str  # the plain-text part
    links: tuple[str, ...]  # every URL in the text part, in order
    received_at: float


class Mailbox:
    """The last `limit` mails caught, newest first; safe to share between threads."""

    def __init__(self, limit: int = MAX_KEPT) -> None:
        self._mails: collections.deque[CaughtMail] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, raw: bytes, recipients: Sequence[str] = ()) -> CaughtMail:
        caught = parse(raw, recipients)
        with self._lock:
            self._mails.appendleft(caught)
        return caught

    def mails(self) -> list[CaughtMail]:
        with self._lock:
            return list(self._mails)

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()


#: The demo's mailbox: the catcher that `petition-widget demo` starts fills it, and `/demo/mail`
#: reads it (both run in the demo's one process).
MAILBOX = Mailbox()


def parse(raw: bytes, recipients: Sequence[str] = ()) -> CaughtMail:
    """What the demo page shows of a mail: recipient, subject, date, text part and its links."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content().replace("\r\n", "\n") if isinstance(body, EmailMessage) else ""
    return CaughtMail(
        to=str(message.get("To", "")) or ", ".join(recipients),
        subject=str(message.get("Subject", "")),
        date=str(message.get("Date", "")),
        text=text,
        links=tuple(_LINK.findall(text)),
        received_at=time.time(),
    )


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.mailbox.add(raw, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


class MailCatcher:
    """An SMTP server that puts every mail it accepts into `mailbox`."""

    def __init__(self, mailbox: Mailbox = MAILBOX, host: str = "127.0.0.1") -> None:
        self.mailbox = mailbox
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The `SMTP_URL` that sends here (plain SMTP: the address is a loopback one)."""
        return f"smtp://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> int:
        """Listen on `host`:`port` (0: a free port) on the running loop; returns the port."""
        loop = asyncio.get_running_loop()
        handler = _Handler(self.mailbox)

        def protocol() -> SMTP:
            return SMTP(handler, hostname=HOSTNAME, enable_SMTPUTF8=True, loop=loop)

        self._server = await loop.create_server(protocol, self.host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def start_in_thread(self, port: int = 0, timeout: float = 10.0) -> int:
        """Run the catcher on an event loop of its own, in a daemon thread; returns the port."""
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self.start(port)))
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="mail-catcher", daemon=True)
        self._thread.start()
        return ready.result(timeout)

    def stop_thread(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._thread is not None:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop = None
        self._thread = None

    def __repr__(self) -> str:
        return f"MailCatcher({self.host}:{self.port})"
