"""The PostgreSQL adapter's own failure: a connection whose return to the pool failed (the
server went away just then) must not poison the task that held it. `databases` kept such a
connection bound to its task, half released, and every later use there failed with
`AssertionError: Connection is already acquired`; the writer's tasks live as long as the
server, so signing never came back after an outage (tests/reliability, intermittently)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from databases.backends.postgres import PostgresConnection

from server.store import outbox
from server.store import postgres as postgres_engine
from server.store.postgres import PostgresEngine, PostgresTransaction
from server.store.storage import Storage
from tests.support import backends

CHECKPOINT_TIMEOUT = 120  # seconds: see _outbox_file


@pytest.mark.postgresql
def test_a_connection_that_broke_on_its_release_is_not_used_again(
    postgres: backends.PostgresDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create()
    release = PostgresConnection.release
    broken = 0

    async def failing(self: Any) -> None:
        """The first release fails as the pool's does when the server has gone: the asyncpg
        connection is no longer usable, and `databases` still holds it."""
        nonlocal broken
        if broken:
            return await release(self)
        broken += 1
        await self._database._pool.release(self._connection)  # no leak in the test itself
        raise asyncpg.ConnectionDoesNotExistError("connection was closed")

    monkeypatch.setattr(PostgresConnection, "release", failing)

    async def run() -> None:
        engine = PostgresEngine(url)
        await engine.database.connect()
        try:
            with pytest.raises(asyncpg.ConnectionDoesNotExistError):
                async with engine.transaction() as tx:
                    await tx.execute("SELECT 1")
            # The same task, as the writer's: works again at once.
            for _ in range(3):
                async with engine.transaction() as tx:
                    assert await tx.fetch_val("SELECT 1") == 1
        finally:
            await engine.close()
            await engine.database.disconnect()

    asyncio.run(run())


async def _outbox_file(engine: PostgresEngine) -> bytes:
    """The outbox's own file under the data directory, after a CHECKPOINT wrote it out."""
    async with engine.transaction() as tx:
        # A CHECKPOINT writes the whole cluster's dirty pages: on a busy machine (other
        # databases being written) it may outlast the engine's statement timeout.
        assert isinstance(tx, PostgresTransaction)
        await tx.conn.execute("CHECKPOINT", timeout=CHECKPOINT_TIMEOUT)
        folder = await tx.fetch_val("SHOW data_directory")
        relative = await tx.fetch_val("SELECT pg_relation_filepath('outbox')")
    return (Path(str(folder)) / str(relative)).read_bytes()


@pytest.mark.postgresql
def test_scrub_rewrites_the_outbox_without_its_dead_rows(
    postgres: backends.PostgresDatabases,
) -> None:
    """A sent mail's row is deleted, but stays in the outbox's pages as a dead tuple (with its
    box, which the hash key opens) until the table is rewritten: `scrub` rewrites it, at most
    every SCRUB_EVERY seconds."""
    url = postgres.create()
    marker = "dead-row-marker-7f3a9"

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        await storage.migrate()
        engine = storage.engine
        assert isinstance(engine, PostgresEngine)
        try:
            async with storage.write() as tx:
                await outbox.add(tx, "mail", {"box": marker}, 0)
            async with storage.write() as tx:
                await tx.execute("DELETE FROM outbox")
            assert marker.encode() in await _outbox_file(engine)  # dead, but there
            await engine.scrub()
            assert marker.encode() not in await _outbox_file(engine)
            # A second scrub within SCRUB_EVERY does nothing (a surge drains many times).
            async with storage.write() as tx:
                await outbox.add(tx, "mail", {"box": marker}, 0)
                await tx.execute("DELETE FROM outbox")
            await engine.scrub()
            assert marker.encode() in await _outbox_file(engine)
        finally:
            await storage.disconnect()

    asyncio.run(run())


async def _filenode(storage: Storage) -> int:
    return int(await storage.database.fetch_val("SELECT pg_relation_filenode('outbox')"))


@pytest.mark.postgresql
def test_scrub_leaves_a_large_outbox_alone(
    postgres: backends.PostgresDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VACUUM FULL copies every live row under the table's lock, which signatures queue
    behind: over SCRUB_MAX_ROWS rows (a backlog) it is skipped, and done once the outbox is
    small again."""
    url = postgres.create()
    monkeypatch.setattr(postgres_engine, "SCRUB_MAX_ROWS", 3)
    monkeypatch.setattr(postgres_engine, "SCRUB_EVERY", 0.0)

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        await storage.migrate()
        try:
            async with storage.write() as tx:
                for i in range(4):
                    await outbox.add(tx, "mail", {"n": i}, 0)
            before = await _filenode(storage)
            await storage.engine.scrub()
            assert await _filenode(storage) == before  # 4 rows: left alone
            async with storage.write() as tx:
                await tx.execute("DELETE FROM outbox WHERE payload = :p", {"p": '{"n": 0}'})
            await storage.engine.scrub()
            assert await _filenode(storage) != before  # 3 rows: rewritten
        finally:
            await storage.disconnect()

    asyncio.run(run())


@pytest.mark.postgresql
def test_a_scrub_that_times_out_does_not_fail_its_caller(
    postgres: backends.PostgresDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewrite cut off by its statement timeout (a slow disk, a big table) is given up, not
    raised: its callers (the mail job's drain, `signatures remove`, retention) have done their
    work, and a later scrub tries again."""
    url = postgres.create()
    monkeypatch.setattr(postgres_engine, "SCRUB_EVERY", 0.0)

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        await storage.migrate()
        try:
            before = await _filenode(storage)
            monkeypatch.setattr(postgres_engine, "SCRUB_TIMEOUT", 1e-6)
            await storage.engine.scrub()  # cut off at once: no error
            assert await _filenode(storage) == before
            monkeypatch.setattr(postgres_engine, "SCRUB_TIMEOUT", 10.0)
            await storage.engine.scrub()  # the connection still works, and so does the next
            assert await _filenode(storage) != before
        finally:
            await storage.disconnect()

    asyncio.run(run())


@pytest.mark.postgresql
def test_rebuilding_the_files_is_not_cut_off_by_the_statement_timeout(
    postgres: backends.PostgresDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`seal`'s VACUUM FULL takes as long as the database is big, and waits for every table's
    lock: it runs under REBUILD_TIMEOUT, not the pool's per-statement timeout (here 1 s, while
    another session holds a table for 3 s)."""
    url = postgres.create()
    monkeypatch.setattr(postgres_engine, "COMMAND_TIMEOUT", 1.0)

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        await storage.migrate()
        other = await asyncpg.connect(url)
        try:
            holder = other.transaction()
            await holder.start()
            await other.execute("LOCK TABLE signatures IN ACCESS SHARE MODE")

            async def release() -> None:
                await asyncio.sleep(3.0)
                await holder.rollback()

            releasing = asyncio.create_task(release())
            await storage.engine.rebuild_files()  # waits out the lock, and is not cut off
            await releasing
        finally:
            await other.close()
            await storage.disconnect()

    asyncio.run(run())
