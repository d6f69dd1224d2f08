"""A real SMTP server for the mail reliability tests: the demo's catcher (aiosmtpd,
`server/web/mailcatcher.py`) in this process, on 127.0.0.1, that keeps every mail it accepts
with what exactly-once needs: the envelope's recipients, the `Message-ID`, and which process
of the server sent it.

Why not the demo's `MailCatcher` as it is: its `Mailbox` keeps the last 100 mails and no
`Message-ID`, and it cannot be slowed down. Here the SMTP side is the same aiosmtpd server,
with three differences tests need:

- the port is chosen in advance (`free_port`), so a server can be told `SMTP_URL` while nothing
  listens there (connections refused), and the catcher started on it later;
- `delay` holds each DATA for a while before the 250, so the sends of two workers overlap and
  each holds its leases while the other claims;
- `sender_of` names the process that holds the client's end of each connection (read from
  /proc while the connection is open), so a test can see that both workers did some sending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import os
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

from server.web import mailcatcher
from tests.support import live


@dataclasses.dataclass(frozen=True)
class Delivery:
    recipients: tuple[str, ...]  # RCPT TO of the envelope
    message_id: str
    mail: mailcatcher.CaughtMail  # to, subject, text part, links
    sender_pid: int | None  # the server's process that sent it, when /proc could tell


class Catcher(mailcatcher.MailCatcher):
    """An SMTP server on 127.0.0.1:`port`, not started yet; `start_in_thread()` opens it."""

    def __init__(
        self,
        port: int | None = None,
        *,
        delay: float = 0.0,
        sender_of: Callable[[int], int | None] | None = None,
    ) -> None:
        super().__init__(mailcatcher.Mailbox(limit=10_000))
        self.port = port if port is not None else live.free_port()
        self.delay = delay
        self.sender_of = sender_of
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        handler = _Recorder(self)

        def protocol() -> SMTP:
            return SMTP(handler, hostname=mailcatcher.HOSTNAME, enable_SMTPUTF8=True, loop=loop)

        self._server = await loop.create_server(protocol, self.host, port or self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def open(self) -> Catcher:
        self.start_in_thread(self.port)
        return self

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        """At least `count` mails, within `timeout` seconds, or a TimeoutError saying how many."""
        deadline = time.monotonic() + timeout
        while len(found := self.deliveries()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} mails arrived in {timeout} s")
            time.sleep(0.05)
        return found

    def _keep(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)


class _Recorder:
    def __init__(self, catcher: Catcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        sender = None
        if self.catcher.sender_of is not None and session.peer:
            sender = self.catcher.sender_of(int(session.peer[1]))  # before the client hangs up
        if self.catcher.delay:
            await asyncio.sleep(self.catcher.delay)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.catcher._keep(
            Delivery(
                recipients=tuple(envelope.rcpt_tos),
                message_id=str(message.get("Message-ID", "")),
                mail=self.catcher.mailbox.add(raw, envelope.rcpt_tos),
                sender_pid=sender,
            )
        )
        return "250 Message accepted for delivery"


def process_group(pgid: int) -> set[int]:
    """The processes of a process group (a LiveServer's: the supervisor and its workers)."""
    members = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp
            members.add(int(name))
    return members


def socket_owner(local_port: int, pids: set[int]) -> int | None:
    """Which of `pids` holds the TCP socket bound to 127.0.0.1:`local_port`, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if int(fields[1].rpartition(":")[2], 16) == local_port:
                        inodes.add(fields[9])
        except OSError:
            continue
    links = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in links:
                    return pid
            except OSError:
                continue
    return None
