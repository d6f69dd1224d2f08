"""Confirmation mails under failure, end to end: a real server (`python -m server serve`), a real
SMTP server (aiosmtpd in this process, `tests/support/catcher.py`), on SQLite and PostgreSQL.

- The mail server is down while people sign, then comes up: every mail arrives, once each.
- The server is killed (SIGKILL) with mails committed and unsent: a new server on the same
  database sends them all; the outbox survived the crash, and no log names a signer.
- Two workers share the outbox: every recipient gets exactly one mail.

Each ends with the outbox empty (a sent row is deleted) and `/healthz` saying no mail waits.

What bounds the waits: a row is first tried when the mail job next looks (at once when a row is
due, else after at most `outbox.deliver`'s idle 5 s); each failure puts it off by `backoff`, 2.5
to 5 s after the first, 5 to 10 s after the second; a row claimed when its server was killed
waits for its lease (`MAIL_LEASE`, 60 s) to end. The tests sign few people and start the mail
server soon, so the first or second retry takes the mails; the kill test reads the rows' due
times after the crash instead of guessing them.

Not here: a kill while a send is under way. The rows the dead worker had claimed then wait for
their lease to end, a full minute, before the next server sends them (tried by hand on both
engines: each mail arrived once, 60 s after the restart); a test of it would cost that minute.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.domain.form_tokens import FormTokens
from server.store.storage import Storage
from tests.support import backends, live, petitions
from tests.support.catcher import Catcher, Delivery, process_group, socket_owner

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
MAIL_FROM = "petitions@example.org"
SIGNERS = 20
RETRY_BOUND = 20.0  # seconds for mails to go once the mail server is up: two backoffs and more


# --- helpers -----------------------------------------------------------------------------------


def mail_server(
    database_url: str, folder: Path, smtp_port: int, **settings: str | int
) -> live.LiveServer:
    """A server, not started, whose petition confirms by email through 127.0.0.1:`smtp_port`,
    which may not be listening yet. Links in its mails are on its own address."""
    server = live.LiveServer(
        database_url,
        folder,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        MAIL_FROM=MAIL_FROM,
        **settings,
    )
    server.env["BASE_URL"] = server.base_url
    return server


def sign(server: live.LiveServer, count: int) -> list[str]:
    """`count` new signers sign at once; the addresses, each answered 202 (mail to follow)."""
    people = [live.new_signer("M") for _ in range(count)]
    tokens = FormTokens([live.SECRET], lifetime=7200, min_age=0)

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post(SIGN, json={"token": tokens.issue(SLUG), **p}) for p in people)
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(run())
    assert statuses == [202] * count, collections.Counter(statuses)
    return [p["email"] for p in people]


def outbox(database_url: str) -> list[dict[str, Any]]:
    """Every outbox row, as the tests need it (read directly: the server has no API for it)."""

    async def read() -> list[dict[str, Any]]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            rows = await storage.database.fetch_all(
                "SELECT topic, payload, attempts, claimed_until, available_at, failed_at, "
                "last_error FROM outbox ORDER BY id"
            )
        finally:
            await storage.disconnect()
        names = ("topic", "payload", "attempts", "claimed_until", "available_at", "failed_at")
        found = []
        for r in rows:
            row = dict(zip((*names, "last_error"), tuple(r[i] for i in range(7)), strict=True))
            row["payload"] = json.loads(row["payload"])
            found.append(row)
        return found

    return asyncio.run(read())


def tried_once(rows: list[dict[str, Any]], count: int) -> bool:
    return len(rows) == count and all(r["attempts"] >= 1 and r["last_error"] for r in rows)


def oldest_unsent(server: live.LiveServer) -> Any:
    answer = httpx.get(server.url("/healthz"), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["oldest_unsent_mail_s"]


def wait_until(what: str, predicate: Callable[[], bool], timeout: float) -> float:
    """Poll `predicate` until it holds; the seconds it took, or a TimeoutError naming `what`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def check_once_each(deliveries: list[Delivery], addresses: list[str], base_url: str) -> None:
    """Exactly one mail per address and no other, each a confirmation with its links."""
    per_recipient = collections.Counter(r for d in deliveries for r in d.recipients)
    assert per_recipient == collections.Counter(addresses), {
        "repeated": sum(n > 1 for n in per_recipient.values()),
        "missing": len(set(addresses) - set(per_recipient)),
        "unknown": len(set(per_recipient) - set(addresses)),
    }
    message_ids = collections.Counter(d.message_id for d in deliveries)
    assert len(message_ids) == len(addresses) and set(message_ids.values()) == {1}
    for d in deliveries:
        assert d.recipients == (d.mail.to,)
        assert any(link.startswith(f"{base_url}/confirm/") for link in d.mail.links), d.mail.links


def check_drained(server: live.LiveServer, database_url: str) -> None:
    """Every row sent and deleted (none failed for good), and /healthz says nothing waits."""
    wait_until("outbox empty", lambda: not outbox(database_url), 10)
    assert oldest_unsent(server) is None


def check_logs_name_no_signer(servers: list[live.LiveServer], addresses: list[str]) -> None:
    names = {name for name, email in live.SIGNERS if email in addresses}
    assert len(names) == len(addresses)
    for server in servers:
        text = server.log().lower()
        leaked = [s for s in (*addresses, *names) if s.lower() in text]
        assert not leaked, f"{server.log_path.name} names {len(leaked)} signers"


# --- the tests ---------------------------------------------------------------------------------


def test_mails_signed_while_smtp_is_down_all_arrive_once_it_is_up(
    tmp_path: Path, database_url: str
) -> None:
    live.prepare(database_url, [petitions.example(confirmation="email")])
    catcher = Catcher()  # its port chosen, nothing listening: connections are refused
    with mail_server(database_url, tmp_path, catcher.port) as server:
        addresses = sign(server, SIGNERS)
        # The mail job tries each row, the mail server refuses the connection, the row waits.
        tried = wait_until(
            "every row tried once",
            lambda: tried_once(outbox(database_url), SIGNERS),
            15,
        )
        rows = outbox(database_url)
        assert sorted(live.recipient(r["payload"]) for r in rows) == sorted(addresses)
        assert {r["last_error"] for r in rows} == {"TransientMailError"}
        assert {r["failed_at"] for r in rows} == {None}  # waiting, not given up
        assert isinstance(oldest_unsent(server), int)
        tokens = {live.recipient(r["payload"]): live.opened(r["payload"])["confirm"] for r in rows}

        catcher.open()
        try:
            start = time.monotonic()
            deliveries = catcher.wait_for(SIGNERS, RETRY_BOUND)
            arrived = time.monotonic() - start
            check_drained(server, database_url)
            time.sleep(1)  # a repeat would come now, if a row were sent twice
            deliveries = catcher.deliveries()
        finally:
            catcher.stop_thread()
    check_once_each(deliveries, addresses, server.base_url)
    for d in deliveries:  # each mail carries its own row's link
        assert f"{server.base_url}/confirm/{tokens[d.mail.to]}" in d.mail.links
    check_logs_name_no_signer([server], addresses)
    print(f"tried in {tried:.1f} s; all {SIGNERS} arrived {arrived:.1f} s after SMTP came up")


@pytest.mark.parametrize("killed", ["untried", "after_a_failed_try"])
def test_mails_committed_before_a_kill_9_are_sent_after_the_restart(
    tmp_path: Path, database_url: str, killed: str
) -> None:
    """Killed at once after the commits (the mail job has not looked yet), or once every row
    has failed a try (each is in its backoff, due a few seconds from the kill)."""
    live.prepare(database_url, [petitions.example(confirmation="email")])
    catcher = Catcher()
    crashed = mail_server(database_url, tmp_path, catcher.port).start()
    try:
        addresses = sign(crashed, SIGNERS)  # committed: each answered 202
        if killed == "after_a_failed_try":
            wait_until("every row tried", lambda: tried_once(outbox(database_url), SIGNERS), 15)
    finally:
        crashed.kill()  # SIGKILL: the mails are in the outbox, none sent
    rows = outbox(database_url)
    assert sorted(live.recipient(r["payload"]) for r in rows) == sorted(addresses)
    assert {r["failed_at"] for r in rows} == {None}
    if killed == "after_a_failed_try":
        assert all(r["attempts"] >= 1 for r in rows)
    tokens = {live.recipient(r["payload"]): live.opened(r["payload"])["confirm"] for r in rows}
    # A row the dead server had claimed is due when its lease ends; the others when their
    # backoff does (or now, if never tried).
    due_in = max(0.0, max(r["available_at"] for r in rows) - time.time())
    leased = sum(r["claimed_until"] is not None for r in rows)

    catcher.open()
    try:
        with mail_server(database_url, tmp_path, catcher.port) as restarted:
            start = time.monotonic()
            deliveries = catcher.wait_for(SIGNERS, due_in + RETRY_BOUND)
            arrived = time.monotonic() - start
            check_drained(restarted, database_url)
            time.sleep(1)
            deliveries = catcher.deliveries()
            # The mail's link works on the new server: the row was the one committed.
            first = next(d for d in deliveries if d.mail.to == addresses[0])
            confirm = f"{restarted.base_url}/confirm/{tokens[addresses[0]]}"
            assert confirm in first.mail.links
            assert httpx.post(confirm, timeout=30).status_code == 200
            count = httpx.get(restarted.url(f"/api/petitions/{SLUG}"), timeout=30)
            assert count.json()["signatures"] == 1
    finally:
        catcher.stop_thread()
    check_once_each(deliveries, addresses, restarted.base_url)
    check_logs_name_no_signer([crashed, restarted], addresses)
    print(
        f"{leased} rows leased at the kill, last due in {due_in:.1f} s; "
        f"all {SIGNERS} arrived {arrived:.1f} s after the restart"
    )


@pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_two_workers_send_every_mail_exactly_once(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    if engine == "sqlite":
        database_url = backends.sqlite_url(tmp_path)
    else:
        database_url = request.getfixturevalue("postgres").create()
    live.prepare(database_url, [petitions.example(confirmation="email")])
    signers = 2 * SIGNERS
    workers: set[int] = set()

    def sender_of(port: int) -> int | None:
        return socket_owner(port, workers)

    # Each DATA held 0.25 s: a worker's batch of 10 takes 2.5 s, and the other worker claims
    # while the first still holds its leases.
    catcher = Catcher(delay=0.25, sender_of=sender_of).open()
    server = mail_server(database_url, tmp_path, catcher.port, WORKERS=2)
    try:
        with server:
            assert server.process is not None
            workers |= process_group(server.process.pid) - {server.process.pid}
            assert len(workers) >= 2, workers
            start = time.monotonic()
            addresses = sign(server, signers)
            deliveries = catcher.wait_for(signers, RETRY_BOUND)
            arrived = time.monotonic() - start
            check_drained(server, database_url)
            time.sleep(1)
            deliveries = catcher.deliveries()
    finally:
        catcher.stop_thread()
    check_once_each(deliveries, addresses, server.base_url)
    check_logs_name_no_signer([server], addresses)
    by_worker = collections.Counter(d.sender_pid for d in deliveries)
    # Both workers sent: the leases, not luck, kept them apart.
    assert None not in by_worker and len(by_worker) == 2, by_worker
    print(f"{signers} mails in {arrived:.1f} s, {sorted(by_worker.values())} per worker")
