"""Retention in the store, on both engines: once a petition has been closed for its
`[retention] days`, its signer data goes (sealed boxes, clear names, keyed hashes, pending
submissions, token digests, quotas) and every count and chart stays exactly the same."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

from server.domain import links, sealing
from server.domain.links import Link
from server.domain.signatures import Consent, NewSignature, seal_group
from server.domain.validation import validate_signer
from server.store import retention
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions

T = 1_700_000_000
DAY = 86_400
HASHER = sealing.EmailHasher(b"k" * 32)
PUBLIC, SECRET = sealing.new_key_pair()


def signature(petition_id: int, n: int, *, confirm: bool = False) -> NewSignature:
    signer = validate_signer(
        {"name": f"Retained Person {n}", "email": f"retained{n}@example.org", "comment": "x"},
        comment="optional",
    )
    signer = dataclasses.replace(signer, email_key=HASHER.email_key(signer.email_key))
    return NewSignature(
        petition_id=petition_id, partner_id=None, unknown_partner=None,
        nonce=secrets.token_urlsafe(12), nonce_expires_at=T + 7200, signer=signer, lang="en",
        consent=Consent("en", "consent text"), ref=links.new_ref(), withdraw=Link.new(),
        confirm=Link.new() if confirm else None, confirm_lifetime=7 * DAY,
        email_domain=HASHER.domain_key("example.org"),
    )  # fmt: skip


async def figures(storage: Storage, pid: int) -> dict[str, Any]:
    """What counts and charts read: counters, rows per hour, per partner, per country."""
    rows = await storage.database.fetch_all(
        "SELECT created_at, partner_id, country, lang, consent_partner FROM signatures "
        "WHERE petition_id = :p ORDER BY id",
        {"p": pid},
    )
    return {
        "totals": await storage.totals(),
        "partners": await storage.partner_totals(pid),
        "buckets": await storage.signature_buckets(pid, 3600, 0),
        "rows": [tuple(r[i] for i in range(5)) for r in rows],
    }


def test_retention_deletes_signer_data_and_keeps_every_figure(database_url: str) -> None:
    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            petition = dataclasses.replace(petitions.example(), retention_days=30)
            await storage.import_petitions([petition, dataclasses.replace(petition, slug="kept")])
            pid = await storage.petition_id(petition.slug)
            kept = await storage.petition_id("kept")
            assert pid is not None and kept is not None
            writer = create_writer(
                storage, lambda: T, lambda batch, now: seal_group(batch, now, owner_key=PUBLIC)
            )
            await writer.start()
            plain = create_writer(storage, lambda: T)
            await plain.start()
            try:
                await asyncio.gather(*(writer.submit(signature(pid, n)) for n in range(5)))
                await plain.submit(signature(pid, 5))  # stored before sealing was on
                await writer.submit(signature(pid, 6, confirm=True))  # still pending
                await writer.submit(signature(kept, 7))
            finally:
                await writer.close()
                await plain.close()
            before = await figures(storage, pid)
            entries = await storage.petitions()

            assert await retention.due(storage, entries, T + 365 * DAY) == []  # still open
            await storage.set_petition_status(pid, "closed")
            closed_at = await storage.database.fetch_val(
                "SELECT closed_at FROM petitions WHERE id = :p", {"p": pid}
            )
            assert closed_at is not None
            assert await retention.due(storage, entries, closed_at + 30 * DAY - 1) == []
            (due,) = [d for d in await retention.due(storage, entries, closed_at + 30 * DAY)
                      if d.petition_id == pid]  # fmt: skip
            assert (due.signatures, due.pending) == (6, 1)

            await retention.run(storage, entries, closed_at + 30 * DAY)

            assert await figures(storage, pid) == before
            left = await storage.database.fetch_all(
                "SELECT name, email, comment, sealed, partner_sealed, email_domain, email_key "
                "FROM signatures WHERE petition_id = :p",
                {"p": pid},
            )
            assert len(left) == 6
            for row in left:
                assert tuple(row[i] for i in range(6)) == ("", "", None, None, None, None)
                assert str(row[6]).startswith("retained:")
            db = storage.database
            assert await db.fetch_val("SELECT COUNT(*) FROM pending_signatures") == 0
            digests = await db.fetch_all(
                "SELECT u.email_digest FROM used_tokens u JOIN signatures s ON s.ref = u.ref "
                "WHERE s.petition_id = :p",
                {"p": pid},
            )
            assert [r[0] for r in digests] == [None] * 6
            # The open petition keeps its signer's data.
            kept_rows = await db.fetch_all(
                "SELECT email FROM signatures WHERE petition_id = :p", {"p": kept}
            )
            assert [r[0] for r in kept_rows] == [""]  # sealed, not retained
            assert (
                await db.fetch_val(
                    "SELECT COUNT(*) FROM signatures WHERE petition_id = :p AND sealed IS NOT NULL",
                    {"p": kept},
                )
                == 1
            )
            # Done once: a second run finds nothing left, and a petition kept for ever
            # (`days = 0`) is never due, however long it has been closed.
            (again,) = await retention.run(storage, entries, closed_at + 30 * DAY)
            assert again.signatures == 0
            forever = dataclasses.replace(petition, retention_days=0)
            await storage.import_petitions([forever])
            entries = await storage.petitions()
            assert await retention.due(storage, entries, T * 2) == []
        finally:
            await storage.disconnect()

    asyncio.run(run())


def test_reopening_a_petition_forgets_when_it_closed(database_url: str) -> None:
    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            await storage.import_petitions([petitions.example()])
            pid = await storage.petition_id(petitions.example().slug)
            assert pid is not None
            read = "SELECT closed_at FROM petitions WHERE id = :p"
            assert await storage.database.fetch_val(read, {"p": pid}) is None
            await storage.set_petition_status(pid, "closed")
            assert await storage.database.fetch_val(read, {"p": pid}) is not None
            await storage.set_petition_status(pid, "open")
            assert await storage.database.fetch_val(read, {"p": pid}) is None
        finally:
            await storage.disconnect()

    asyncio.run(run())


def test_the_retention_job_deletes_on_the_runner_clock_and_keeps_every_figure(
    database_url: str,
) -> None:
    """Days pass on the runner's injected clock: nothing goes before the petition has been
    closed for its retention, everything personal goes at its first look after."""
    import logging

    from server.store import jobs
    from server.store.clock import ManualClock
    from server.store.registry import Registry
    from server.store.runner import JobRunner

    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            petition = dataclasses.replace(petitions.example(), retention_days=2)
            await storage.import_petitions([petition])
            pid = await storage.petition_id(petition.slug)
            assert pid is not None
            plain = create_writer(storage, lambda: T)
            await plain.start()
            try:
                await asyncio.gather(*(plain.submit(signature(pid, n)) for n in range(4)))
            finally:
                await plain.close()
            await storage.set_petition_status(pid, "closed")
            closed_at = await storage.database.fetch_val(
                "SELECT closed_at FROM petitions WHERE id = :p", {"p": pid}
            )
            before = await figures(storage, pid)
            clock = ManualClock(float(closed_at))
            runner = JobRunner(clock, logging.getLogger("test.jobs"))
            jobs.register(runner, storage, Registry(storage, 1.0, clock), clock)
            named = "SELECT COUNT(*) FROM signatures WHERE petition_id = :p AND email <> ''"
            await runner.start()
            try:
                await clock.wait_for_sleepers(len(runner.status()))
                assert await storage.database.fetch_val(named, {"p": pid}) == 4
                for _ in range(2 * 24 - 1):  # the job looks every hour: not yet
                    await clock.advance(jobs.RETENTION_EVERY)
                    await clock.wait_for_sleepers(len(runner.status()))
                assert await storage.database.fetch_val(named, {"p": pid}) == 4
                await clock.advance(jobs.RETENTION_EVERY)
                await clock.wait_for_sleepers(len(runner.status()))
                assert await storage.database.fetch_val(named, {"p": pid}) == 0
                assert await figures(storage, pid) == before
                assert runner.status()["retention"].failures == 0
            finally:
                await runner.stop(1.0)
        finally:
            await storage.disconnect()

    asyncio.run(run())
