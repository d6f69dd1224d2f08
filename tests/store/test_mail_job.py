"""The mail job on both engines, under a manual clock, sending to a real aiosmtpd server on
127.0.0.1: outbox rows become mails; a mail server that is down delays them and loses none; a
permanent refusal, a row older than a day and a row about no petition are given up with their
payload dropped (a confirmation refused for good takes its pending submission with it, never a
signature that counts); rows failed a week ago are purged; each claimed batch goes on one SMTP
connection, where a refused mail fails only its own row and a dropped connection loses no mail;
and no log line carries an address."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from server.domain import i18n, links
from server.domain.sealing import hour_after
from server.store import confirmations, jobs, outbox
from server.store.clock import ManualClock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.signatures import MAIL_TOPIC
from server.store.smtp import SmtpSender
from server.store.storage import Storage
from tests.store.test_confirmations import counted, pending, sign, submission
from tests.store.test_smtp import Recorder, free_port, smtp_server
from tests.support import petitions

T = 1_700_000_000
BASE = "https://petitions.example.net"
FROM = "petitions@example.net"
JOBS = 5  # count-refresh, purge, retention, mail, outbox-purge: each sleeps between steps


@dataclass
class Setup:
    storage: Storage
    clock: ManualClock
    runner: JobRunner
    petition_id: int


async def opened(url: str) -> tuple[Storage, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([petitions.example("email")])
    petition_id = await storage.petition_id(petitions.example().slug)
    assert petition_id is not None
    return storage, petition_id


@contextlib.asynccontextmanager
async def running(url: str, smtp_port: int, *, refresh: bool = True) -> AsyncIterator[Setup]:
    """Storage with the example petition, and the jobs sending to 127.0.0.1:`smtp_port`. The
    jobs start only once the test calls `runner.start()`, so it can queue rows first."""
    storage, petition_id = await opened(url)
    clock = ManualClock(T)
    registry = Registry(storage, 1.0, clock)
    if refresh:
        await registry.refresh()
    runner = JobRunner(clock, logging.getLogger("test.jobs"))
    mail_job = jobs.MailJob(
        sender=SmtpSender.from_url(f"smtp://127.0.0.1:{smtp_port}"),
        base_url=BASE,
        mail_from=FROM,
        confirm_lifetime=7 * 86_400,
    )
    jobs.register(runner, storage, registry, clock, mail_job=mail_job)
    try:
        yield Setup(storage, clock, runner, petition_id)
    finally:
        await runner.stop(1.0)
        await storage.disconnect()


def mail(petition_id: int, kind: str = "confirm", lang: str = "en", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": kind,
        "to": f"zt.job-{kind}-{lang}@example.org",
        "lang": lang,
        "petition_id": petition_id,
        "withdraw": links.Link.new().token,
    }
    if kind == "confirm":
        payload["confirm"] = links.Link.new().token
    return {**payload, **extra}


async def queue(storage: Storage, *payloads: dict[str, Any], now: float = T) -> None:
    async with storage.write() as tx:
        for payload in payloads:
            await outbox.add(tx, MAIL_TOPIC, payload, now)


async def rows(storage: Storage) -> list[dict[str, Any]]:
    found = await storage.database.fetch_all(
        "SELECT id, payload, attempts, last_error, failed_at FROM outbox ORDER BY id"
    )
    keys = ["id", "payload", "attempts", "last_error", "failed_at"]
    return [dict(zip(keys, (r[i] for i in range(len(keys))), strict=True)) for r in found]


async def until(clock: ManualClock, done: Callable[[], bool], step: float, limit: int) -> int:
    """Advance `step` seconds at a time, letting every job reach its next sleep, until `done()`;
    returns how many steps it took."""
    for steps in range(limit):
        if done():
            return steps
        await clock.advance(step)
        await clock.wait_for_sleepers(JOBS)
    raise AssertionError(f"not done after {limit} steps of {step} s")


def lines(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line of ours, formatted with any traceback (not the test SMTP server's own)."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(
        formatter.format(r) for r in caplog.records if not r.name.startswith("mail.log")
    )


def parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_rows_become_mails_and_leave_the_outbox(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port, running(database_url, port) as s:
            confirm = mail(s.petition_id)
            already = mail(s.petition_id, "already_signed", "ru")
            await queue(s.storage, confirm, already)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert sorted(handler.recipients) == sorted([confirm["to"], already["to"]])
            assert await rows(s.storage) == []
        by_to = {parsed(raw)["To"]: parsed(raw) for raw in handler.received}
        first, second = by_to[confirm["to"]], by_to[already["to"]]
        assert first["Subject"] == i18n.catalog("en")("mail_subject")
        assert second["Subject"] == i18n.catalog("ru")("mail_subject_signed")
        text = first.get_body(("plain",))
        assert text is not None
        body = text.get_content()
        assert f"{BASE}/confirm/{confirm['confirm']}" in body.splitlines()
        assert f"{BASE}/withdraw/{confirm['withdraw']}" in body.splitlines()

    asyncio.run(check())


def test_a_petition_imported_since_the_registry_loaded_is_found(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port, running(database_url, port, refresh=False) as s:
            await queue(s.storage, mail(s.petition_id))
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert len(handler.received) == 1 and await rows(s.storage) == []

    asyncio.run(check())


def test_a_mail_server_that_is_down_delays_mails_and_loses_none(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def check() -> None:
        handler = Recorder()
        port = free_port()
        async with running(database_url, port) as s:
            payloads = [mail(s.petition_id), mail(s.petition_id, "already_signed")]
            await queue(s.storage, *payloads)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            waiting = await rows(s.storage)
            assert [r["attempts"] for r in waiting] == [1, 1]
            assert all(r["failed_at"] is None for r in waiting)
            assert {r["last_error"] for r in waiting} == {"TransientMailError"}
            # Down for an hour of virtual time: tried again and again, kept every time.
            for _ in range(12):
                await s.clock.advance(300)
                await s.clock.wait_for_sleepers(JOBS)
            still = await rows(s.storage)
            assert len(still) == 2 and all(r["attempts"] > 3 for r in still)
            async with smtp_server(handler, port=port):
                await until(s.clock, lambda: len(handler.received) == 2, 300, 30)
                await s.clock.wait_for_sleepers(JOBS)
            assert await rows(s.storage) == []
            assert sorted(handler.recipients) == sorted(p["to"] for p in payloads)
        logged = lines(caplog)
        assert "not sent yet" in logged and "TransientMailError" in logged
        for payload in payloads:
            assert payload["to"] not in logged and payload["to"].split("@")[0] not in logged

    asyncio.run(check())


def test_a_permanent_refusal_gives_the_row_up_and_drops_its_payload(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def check() -> None:
        payload: dict[str, Any] = {}
        handler = Recorder("RCPT", "550 5.1.1 <zt.job-confirm-en@example.org>: User unknown")
        async with smtp_server(handler) as port, running(database_url, port) as s:
            payload = mail(s.petition_id)
            await queue(s.storage, payload)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            (row,) = await rows(s.storage)
            assert row["last_error"] == "permanent:550"
            assert row["failed_at"] == hour_after(T) and row["payload"] == "{}"  # to the hour
            assert (await outbox.counts(s.storage, MAIL_TOPIC)) == outbox.Counts(0, 1)
            await s.clock.advance(3600)
            await s.clock.wait_for_sleepers(JOBS)
            (again,) = await rows(s.storage)
            assert again["attempts"] == 1  # never tried again
        assert handler.received == []
        logged = lines(caplog)
        assert "permanent:550" in logged
        assert payload["to"] not in logged and "zt.job-" not in logged

    asyncio.run(check())


def test_a_mail_is_tried_for_a_day_then_given_up(database_url: str) -> None:
    async def check() -> None:
        async with running(database_url, free_port()) as s:
            await queue(s.storage, mail(s.petition_id))
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)

            async def failed() -> bool:
                (row,) = await rows(s.storage)
                return row["failed_at"] is not None

            hours = 0
            while not await failed():
                await s.clock.advance(3600)
                await s.clock.wait_for_sleepers(JOBS)
                hours += 1
                assert hours <= 26
            (row,) = await rows(s.storage)
            assert row["last_error"] == "expired" and row["payload"] == "{}"
            assert 24 <= hours <= 26  # retried for a day (backing off to an hour), not longer
            assert row["attempts"] >= 10

    asyncio.run(check())


def test_a_row_older_than_a_day_is_given_up_unsent(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port, running(database_url, port) as s:
            await queue(s.storage, mail(s.petition_id), now=T - jobs.MAIL_PATIENCE - 1)
            await queue(s.storage, mail(s.petition_id, "already_signed"), now=T - 3600)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            (row,) = await rows(s.storage)
            assert row["last_error"] == "expired" and row["payload"] == "{}"
        assert len(handler.received) == 1  # the younger one went

    asyncio.run(check())


def test_a_row_about_no_petition_or_of_no_known_kind_is_given_up(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder()
        async with smtp_server(handler) as port, running(database_url, port) as s:
            await queue(s.storage, mail(s.petition_id + 1000))
            await queue(s.storage, mail(s.petition_id, kind="newsletter"))
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            found = await rows(s.storage)
            assert [r["last_error"] for r in found] == ["no_petition", "bad_payload"]
            assert all(r["payload"] == "{}" for r in found)
        assert handler.received == []

    asyncio.run(check())


def test_rows_failed_a_week_ago_are_purged(database_url: str) -> None:
    async def check() -> None:
        async with smtp_server(Recorder()) as port, running(database_url, port) as s:
            await queue(s.storage, {"old": 1}, {"recent": 1}, {"waiting": 1})
            first, second, third = [r["id"] for r in await rows(s.storage)]
            # Times are kept to the hour, rounded up: a row goes within the hour after a week.
            await outbox.fail(s.storage, first, T - jobs.FAILED_KEPT - 3600, "permanent:550")
            await outbox.fail(s.storage, second, T - jobs.FAILED_KEPT + 600, "expired")
            # The third, a mail row of no known shape, is given up by the mail job at once.
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert [r["id"] for r in await rows(s.storage)] == [second, third]
            # The second goes at the first purge a week after its failure (to the hour).
            gone_at = hour_after(T - jobs.FAILED_KEPT + 600) + jobs.FAILED_KEPT
            while s.clock.now() <= gone_at:
                await s.clock.advance(jobs.PURGE_EVERY)
                await s.clock.wait_for_sleepers(JOBS)
            assert [r["id"] for r in await rows(s.storage)] == [third]

    asyncio.run(check())


def test_without_mail_settings_no_mail_job_runs_and_rows_wait(database_url: str) -> None:
    async def check() -> None:
        storage, petition_id = await opened(database_url)
        clock = ManualClock(T)
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(runner, storage, Registry(storage, 1.0, clock), clock)
        assert set(runner.status()) == {"count-refresh", "purge", "retention"}
        await queue(storage, mail(petition_id))
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))
            await clock.advance(3600)
            await clock.wait_for_sleepers(len(runner.status()))
            (row,) = await rows(storage)
            assert row["attempts"] == 0 and row["failed_at"] is None
        finally:
            await runner.stop(1.0)
            await storage.disconnect()

    asyncio.run(check())


def test_a_mail_job_needs_a_sender_address() -> None:
    with pytest.raises(ValueError):
        jobs.MailJob(SmtpSender.from_url("smtp://127.0.0.1:25"), BASE, "", 86_400)


# --- Batches ----------------------------------------------------------------------------------


def test_each_claimed_batch_goes_on_one_smtp_connection(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder()
        count = 2 * jobs.MAIL_BATCH + 3
        async with smtp_server(handler) as port, running(database_url, port) as s:
            payloads = [mail(s.petition_id, to=f"zt.batch-{i}@example.org") for i in range(count)]
            await queue(s.storage, *payloads)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert await rows(s.storage) == []
        assert sorted(handler.recipients) == sorted(p["to"] for p in payloads)
        assert handler.connections() == 3 and handler.quits == 3  # one per batch claimed

    asyncio.run(check())


def test_a_refusal_in_the_middle_of_a_batch_gives_up_only_its_row(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refused = "zt.batch-2@example.org"

    async def check() -> None:
        handler = Recorder("RCPT", f"550 5.1.1 <{refused}>: unknown", refuse=frozenset({refused}))
        async with smtp_server(handler) as port, running(database_url, port) as s:
            payloads = [mail(s.petition_id, to=f"zt.batch-{i}@example.org") for i in range(5)]
            await queue(s.storage, *payloads)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            (row,) = await rows(s.storage)
            assert row["last_error"] == "permanent:550" and row["payload"] == "{}"
        assert sorted(handler.recipients) == sorted(p["to"] for p in payloads if p["to"] != refused)
        assert handler.connections() == 1
        assert refused not in lines(caplog)

    asyncio.run(check())


def test_a_connection_dropped_in_the_middle_of_a_batch_loses_no_mail(database_url: str) -> None:
    async def check() -> None:
        handler = Recorder(drop_after=2)
        async with smtp_server(handler) as port, running(database_url, port) as s:
            payloads = [mail(s.petition_id, to=f"zt.batch-{i}@example.org") for i in range(7)]
            await queue(s.storage, *payloads)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert await rows(s.storage) == []
        assert sorted(handler.recipients) == sorted(p["to"] for p in payloads)  # each once
        assert handler.connections() == 4

    asyncio.run(check())


def test_a_confirmation_refused_for_good_takes_its_pending_submission_with_it(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 550 to a confirmation mail: nobody can confirm that submission, so its personal data
    and links go at once. A signature that counts is never touched, whatever mail about it is
    refused: its own confirmation, or "you have already signed"."""
    caplog.set_level(logging.DEBUG)
    refused = {"zt.bounce@example.org", "zt.counted@example.org"}

    async def check() -> None:
        handler = Recorder("RCPT", "550 5.1.1 unknown", refuse=frozenset(refused))
        async with smtp_server(handler) as port, running(database_url, port) as s:
            bounce = submission(s.petition_id, "zt.bounce@example.org", "Zt Bounce")
            kept = submission(s.petition_id, "zt.kept@example.org", "Zt Kept")
            counts = submission(s.petition_id, "zt.counted@example.org", "Zt Counted")
            again = submission(s.petition_id, "zt.counted@example.org", "Zt Counted Again")
            await sign(s.storage, bounce, kept, counts)
            # Confirmed before its mail went (a copy that arrived before a crash, say).
            assert counts.confirm and bounce.confirm and bounce.withdraw
            await confirmations.confirm(s.storage, counts.confirm.digest, T)
            await sign(s.storage, again)  # "you have already signed", refused too
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)

            assert await pending(s.storage) == ["Zt Kept"]
            for link in (bounce.confirm, bounce.withdraw):
                assert await confirmations.find(s.storage, link.digest, T) is None
            assert await counted(s.storage, s.petition_id) == (1, [("Zt Counted", T, T)])
            found = await rows(s.storage)
            assert [r["last_error"] for r in found] == ["permanent:550"] * 3
            assert all(r["payload"] == "{}" for r in found)
        assert handler.recipients == ["zt.kept@example.org"]
        logged = lines(caplog)
        assert "deleted a submission whose confirmation was refused for good" in logged
        assert not any(word in logged for word in ("zt.bounce", "zt.counted", "Zt Bounce"))

    asyncio.run(check())


def test_a_non_ascii_local_part_without_smtputf8_is_given_up_and_its_submission_forgotten(
    database_url: str,
) -> None:
    """What happens to `юзер@пример.рф` when the mail server lacks SMTPUTF8: no ASCII form of
    the address exists, so the mail can never go through that server; the row is given up at
    once (not retried for a day) and the submission, which nobody can confirm, goes with it.
    The same address through a server with SMTPUTF8 arrives, its domain in ASCII."""

    async def check() -> None:
        without, with_it = Recorder(), Recorder()
        async with smtp_server(without) as port, running(database_url, port) as s:
            unmailable = submission(s.petition_id, "зт.юзер@пример.рф", "Zt Unmailable")
            await sign(s.storage, unmailable)
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            (row,) = await rows(s.storage)
            assert row["last_error"] == "permanent:no_smtputf8" and row["payload"] == "{}"
            assert await pending(s.storage) == []
        assert without.received == []
        async with (
            smtp_server(with_it, enable_SMTPUTF8=True) as port,
            running(database_url, port) as s,
        ):
            await sign(s.storage, submission(s.petition_id, "зт.юзер@пример.рф", "Zt Mailable"))
            await s.runner.start()
            await s.clock.wait_for_sleepers(JOBS)
            assert [r["last_error"] for r in await rows(s.storage)] == ["permanent:no_smtputf8"]
        assert with_it.recipients == ["зт.юзер@xn--e1afmkfd.xn--p1ai"]

    asyncio.run(check())
