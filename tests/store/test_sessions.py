"""Dashboard sessions in the store, on both engines: only digests are kept, a revocation ends
its key's sessions in its own transaction, and the purge job deletes those whose time is up
(under a manual clock)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server.domain import access_keys
from server.store import jobs, sessions
from server.store.clock import ManualClock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.storage import Storage

T = 1_700_000_000
HOUR = 3600


def with_keys(url: str, body: Callable[[Storage, list[str]], Awaitable[None]]) -> None:
    """`body` with a migrated database and three owner keys (the last labelled "demo")."""

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            await storage.migrate()
            ids = []
            for label in ("one", "two", "demo"):
                key = access_keys.generate(access_keys.OWNER)
                await storage.add_access_key(key.id, key.role, key.digest, label)
                ids.append(key.id)
            await body(storage, ids)
        finally:
            await storage.disconnect()

    asyncio.run(run())


async def stored(storage: Storage) -> dict[str, str]:
    rows = await storage.database.fetch_all("SELECT digest, key_id FROM dashboard_sessions")
    return {r[0]: r[1] for r in rows}


def test_a_session_is_found_by_its_digest_until_its_end(database_url: str) -> None:
    async def body(storage: Storage, keys: list[str]) -> None:
        await sessions.start(storage, "d" * 64, keys[0], T, T + HOUR)
        assert await sessions.key_of(storage, "d" * 64, T + HOUR) == keys[0]  # its last second
        assert await sessions.key_of(storage, "d" * 64, T + HOUR + 1) is None
        assert await sessions.key_of(storage, "e" * 64, T) is None
        assert await sessions.end(storage, "d" * 64)
        assert not await sessions.end(storage, "d" * 64)  # already gone
        assert await sessions.key_of(storage, "d" * 64, T) is None

    with_keys(database_url, body)


def test_revoking_a_key_deletes_its_sessions_and_no_others(database_url: str) -> None:
    async def body(storage: Storage, keys: list[str]) -> None:
        one, two, demo = keys
        for n, key in enumerate((one, one, two, demo)):
            await sessions.start(storage, f"{n}" * 64, key, T, T + HOUR)
        assert await storage.revoke_access_key(one)
        assert sorted((await stored(storage)).values()) == sorted([two, demo])
        # The demo's way of revoking, by label, ends its keys' sessions too.
        assert await storage.revoke_access_keys_labelled("demo") == 1
        assert list((await stored(storage)).values()) == [two]

    with_keys(database_url, body)


def test_the_purge_job_deletes_sessions_whose_time_is_up(database_url: str) -> None:
    async def body(storage: Storage, keys: list[str]) -> None:
        for name, ends in (("gone", T - 1), ("last", T), ("later", T + int(jobs.PURGE_EVERY))):
            await sessions.start(storage, name.ljust(64, "0"), keys[0], T - HOUR, ends)
        clock = ManualClock(T)
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(runner, storage, Registry(storage, 1.0, clock), clock)
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))  # every job has run once, sleeps
            left = {d.rstrip("0") for d in await stored(storage)}
            assert left == {"last", "later"}  # "last" is valid through T itself
            await clock.advance(jobs.PURGE_EVERY)
            await clock.wait_for_sleepers(len(runner.status()))
            assert {d.rstrip("0") for d in await stored(storage)} == {"later"}
            assert runner.status()["purge"].failures == 0
        finally:
            await runner.stop(1.0)

    with_keys(database_url, body)
