"""The store's periodic work runs as jobs of the runner, on both engines, under a manual clock:
expired nonces are purged, and counts written by another process reach the registry."""

from __future__ import annotations

import asyncio
import logging

from server.store import jobs
from server.store.clock import ManualClock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.storage import Storage
from tests.support import petitions

T = 1_700_000_000


async def opened(url: str) -> Storage:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    return storage


async def nonces(storage: Storage) -> set[str]:
    rows = await storage.database.fetch_all("SELECT nonce FROM used_tokens")
    return {r[0] for r in rows}


def test_nonce_purge_runs_at_start_and_every_period(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(runner, storage, Registry(storage, 1.0, clock), clock)
        async with storage.write() as tx:
            for nonce, expires in (("old", T - 1), ("later", T + 100), ("live", T + 10_000)):
                await tx.execute(
                    "INSERT INTO used_tokens (nonce, expires_at) VALUES (:n, :e)",
                    {"n": nonce, "e": expires},
                )
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))  # every job has run once, sleeps
            assert await nonces(storage) == {"later", "live"}
            await clock.advance(jobs.PURGE_EVERY - 1)
            assert await nonces(storage) == {"later", "live"}  # not before its period
            await clock.advance(1)
            await clock.wait_for_sleepers(len(runner.status()))
            assert await nonces(storage) == {"live"}
            assert runner.status()["purge"].failures == 0
        finally:
            await runner.stop(1.0)
            await storage.disconnect()

    asyncio.run(check())


def test_count_refresh_brings_other_writers_counts(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([petitions.example()])
        clock = ManualClock(T)
        registry = Registry(storage, 1.0, clock)
        await registry.refresh()
        (entry,) = registry.entries.values()
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(runner, storage, registry, clock)
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))
            # Another worker's commit: a counter row this process never wrote.
            async with storage.write() as tx:
                await tx.execute(
                    "INSERT INTO counters (petition_id, partner_id, shard, n) "
                    "VALUES (:p, 0, 5, 42)",
                    {"p": entry.id},
                )
            assert registry.count(entry) == 0
            await clock.advance(1.0)
            await clock.wait_for_sleepers(len(runner.status()))
            assert registry.count(entry) == 42
            assert registry.failure is None
        finally:
            await runner.stop(1.0)
            await storage.disconnect()

    asyncio.run(check())


def test_the_purge_deletes_submissions_never_confirmed(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([petitions.example(confirmation="email")])
        pid = await storage.petition_id("save-russian-lgbt-network")
        lifetime = 7 * 86_400
        async with storage.write() as tx:
            for ref, created in (("old", T - lifetime - 1), ("young", T - lifetime + 60)):
                await tx.execute(
                    "INSERT INTO pending_signatures (ref, petition_id, email_key, email, name, "
                    "lang, consent_version, consent_organiser, consent_partner, created_at) "
                    "VALUES (:ref, :p, :ref, :ref, 'Someone', 'en', 'v', 0, 0, :t)",
                    {"ref": ref, "p": pid, "t": created},
                )
        clock = ManualClock(T)
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(
            runner, storage, Registry(storage, 1.0, clock), clock, confirm_lifetime=lifetime
        )
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))
            rows = await storage.database.fetch_all("SELECT ref FROM pending_signatures")
            assert [r[0] for r in rows] == ["young"]
            await clock.advance(jobs.PURGE_EVERY)
            await clock.wait_for_sleepers(len(runner.status()))
            rows = await storage.database.fetch_all("SELECT ref FROM pending_signatures")
            assert rows == []  # its time came too
        finally:
            await runner.stop(1.0)
            await storage.disconnect()

    asyncio.run(check())
