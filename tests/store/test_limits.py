"""The shared limit store, on both engines: two processes' limiters (two `Storage`s on one
database) become one limit through their flushes, share one key per period, and the purge
deletes slots and keys that left every window."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from server.domain.challenge import Switch
from server.domain.ratelimit import ROTATE, SLOT, SLOTS, Keyring, Limits
from server.store.limits import LimitStore
from server.store.storage import Storage

T = 1_700_000_000.0 + 30  # well inside a period


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


Worker = tuple[Limits, LimitStore]


def with_workers(url: str, body: Callable[[Clock, Worker, Worker], Awaitable[None]]) -> None:
    async def run() -> None:
        clock = Clock()
        storages = [Storage(url), Storage(url)]
        for storage in storages:
            await storage.connect()
        await storages[0].migrate()
        try:
            workers = []
            for storage in storages:
                limits = Limits(clock)
                workers.append((limits, LimitStore(storage.engine, limits)))
            await body(clock, workers[0], workers[1])
        finally:
            for storage in storages:
                await storage.disconnect()

    asyncio.run(run())


def test_two_workers_share_one_limit(database_url: str) -> None:
    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        sign_a, sign_b = a[0].limiter("sign", 10), b[0].limiter("sign", 10)
        await a[1].sync()
        await b[1].sync()
        assert [sign_a.hit(("203.0.113.5", 1)) for _ in range(6)] == [0] * 6
        await a[1].sync()
        # B has not heard of this client yet: what it admits before its flush is the overshoot
        # the limits allow (one flush per worker).
        assert sign_b.hit(("203.0.113.5", 1)) == 0
        await b[1].sync()
        # Now B knows of A's 6 and its own 1: 3 more, then no more.
        assert [sign_b.hit(("203.0.113.5", 1)) for _ in range(3)] == [0, 0, 0]
        assert sign_b.hit(("203.0.113.5", 1)) > 0
        await b[1].sync()
        # A learns of B's hits with its next flush of this key: until then it admits (its one
        # flush of overshoot), then both know of 6 + 1 + 3 + 1 and refuse.
        assert sign_a.hit(("203.0.113.5", 1)) == 0
        await a[1].sync()
        assert sign_a.hit(("203.0.113.5", 1)) > 0
        await b[1].sync()
        assert sign_b.hit(("203.0.113.5", 1)) > 0
        assert sign_a.hit(("203.0.113.5", 2)) == 0  # another petition
        assert sign_a.hit(("203.0.113.6", 1)) == 0  # another client

    with_workers(database_url, body)


def test_every_worker_uses_the_same_key(database_url: str) -> None:
    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        await a[1].sync()
        await b[1].sync()
        period = Keyring.period(clock.now)
        assert a[0].keyring.secret(period) == b[0].keyring.secret(period)
        assert a[0].keyring.secret(period + 1) == b[0].keyring.secret(period + 1)
        assert not a[0].keyring.missing([period, period + 1])

    with_workers(database_url, body)


def test_the_purge_deletes_old_slots_and_keys(database_url: str) -> None:
    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        limits, store = a
        lim = limits.limiter("sign", 10)
        await store.sync()
        lim.hit("203.0.113.5")
        await store.sync()
        async with store.engine.limits() as tx:
            assert await tx.fetch_val("SELECT COUNT(*) FROM limit_counts") == 1
            first = await tx.fetch_val("SELECT MIN(period) FROM limit_keys")
        clock.now += ROTATE + SLOT * SLOTS + 1  # the next period, past every window
        await store.sync()
        async with store.engine.limits() as tx:
            assert await tx.fetch_val("SELECT COUNT(*) FROM limit_counts") == 0
            assert await tx.fetch_val("SELECT MIN(period) FROM limit_keys") == first + 1
        assert lim.held() == 0
        assert first not in limits.keyring.periods()

    with_workers(database_url, body)


def test_each_count_goes_with_its_own_window(database_url: str) -> None:
    """The aggregate limit's window is five minutes; an address's counts still go after their
    own 65 s, not after the longest window of any limit (docs/privacy.md: a seizure reveals at
    most the current window)."""

    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        limits, store = a
        sign = limits.limiter("sign", 10)
        network = limits.limiter("network", 300, slot=5 * SLOT, slots=SLOTS)
        await store.sync()
        sign.hit("203.0.113.5")
        network.hit("203.0.113.0/24")
        await store.sync()

        async def spans() -> list[int]:
            async with store.engine.limits() as tx:
                rows = await tx.fetch_all("SELECT span FROM limit_counts ORDER BY span")
            return [int(r[0]) for r in rows]

        assert await spans() == [SLOT * SLOTS, 5 * SLOT * SLOTS]
        clock.now += SLOT * SLOTS + 5 * SLOT + 1  # past the address's window, inside the other
        await store.sync()
        assert await spans() == [5 * SLOT * SLOTS]
        assert (sign.held(), network.held()) == (0, 1)
        clock.now += 5 * SLOT * SLOTS
        await store.sync()
        assert await spans() == []

    with_workers(database_url, body)


def test_sqlite_keeps_limits_beside_the_database(tmp_path: Path) -> None:
    """Not in the database itself: a flush never takes the signatures' write lock."""
    url = f"sqlite:///{tmp_path / 'p.db'}"

    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        a[0].limiter("sign", 10).hit("x")
        await a[1].sync()
        assert (tmp_path / "p.db-limits").exists()
        assert (tmp_path / "p.db-limits").stat().st_mode & 0o077 == 0
        tables = "'limit_counts', 'limit_keys', 'limit_hot'"
        names = f"SELECT name FROM sqlite_master WHERE name IN ({tables})"
        assert await a[1].engine.database.fetch_all(names) == []
        with contextlib.closing(sqlite3.connect(tmp_path / "p.db-limits")) as side:
            assert {row[0] for row in side.execute(names)} == {
                "limit_counts",
                "limit_keys",
                "limit_hot",
            }

    with_workers(url, body)


def test_memory_lets_go_while_the_store_does_not_answer() -> None:
    """docs/privacy.md: a process forgets a key's hits once they have left the window, and the
    key of a period with them. That held only after a purge of the store: while the store did
    not answer, every HMAC, hit and key stayed in memory, the hits given back at each flush."""

    class Down:
        @contextlib.asynccontextmanager
        async def limits(self) -> AsyncIterator[None]:
            raise OSError("the limit store does not answer")
            yield

    clock = Clock()
    limits = Limits(clock)
    lim = limits.limiter("sign", 10)
    store = LimitStore(Down(), limits)  # type: ignore[arg-type]
    first = Keyring.period(clock.now)
    assert lim.hit("203.0.113.5") == 0
    asyncio.run(store.run())  # logged, not raised: the hit is given back
    assert lim.held() == 1 and first in limits.keyring.periods()
    clock.now += ROTATE + SLOT * SLOTS + 1  # the next period, past every window
    lim.hit("203.0.113.6")
    asyncio.run(store.run())
    assert lim.held() == 1  # only the new client's
    pending = lim.take_pending()  # the old client's hit is no longer waiting to be sent
    (slots,) = pending.values()
    assert all(start > clock.now - SLOT * SLOTS for start in slots)
    assert first not in limits.keyring.periods()


def test_a_worker_knows_of_a_client_it_has_not_served(database_url: str) -> None:
    """Regression: a worker learnt of a client's hits only once it had counted one of its own
    for that client, so the first request the kernel handed it past the limit was admitted
    (CI: a widget document with a fresh form token, a bearer-key guess answered 401)."""

    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        sign_a, sign_b = a[0].limiter("sign", 10), b[0].limiter("sign", 10)
        await a[1].sync()
        await b[1].sync()
        assert [sign_a.hit(("203.0.113.5", 1)) for _ in range(10)] == [0] * 10
        await a[1].sync()  # A adds its hits and announces the key
        await b[1].sync()  # B adopts it without having served the client
        assert sign_b.hit(("203.0.113.5", 1)) > 0
        assert sign_b.wait(("203.0.113.5", 1)) > 0
        assert sign_b.hit(("203.0.113.6", 1)) == 0  # another client
        # Announcements go with the purge once read for long enough.
        clock.now += 60
        await a[1].sync()
        async with a[1].engine.limits() as tx:
            assert await tx.fetch_val("SELECT COUNT(*) FROM limit_hot") == 0

    with_workers(database_url, body)


def test_announcements_survive_a_failed_flush(database_url: str) -> None:
    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        sign_a, sign_b = a[0].limiter("sign", 4), b[0].limiter("sign", 4)
        await a[1].sync()
        await b[1].sync()
        assert [sign_a.hit("203.0.113.5") for _ in range(4)] == [0] * 4
        announced = sign_a.take_announced()
        assert len(announced) == 1
        sign_a.give_back(sign_a.take_pending(), announced)  # as a failed flush does
        await a[1].sync()
        await b[1].sync()
        assert sign_b.hit("203.0.113.5") > 0

    with_workers(database_url, body)


def test_the_auto_challenge_is_one_for_every_worker(database_url: str) -> None:
    """Regression: "auto" counted refusals per process, so with two workers 60 + 40 refusals
    of one petition within a minute turned nothing on, and a crossing that one worker saw left
    the challenge off in the other."""

    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        switch_a, switch_b = Switch(a[0], threshold=100), Switch(b[0], threshold=100)
        await a[1].sync()
        await b[1].sync()
        for _ in range(60):
            switch_a.note(1, "invalid_token")
        for _ in range(40):
            switch_b.note(1, "invalid_token")
        assert not switch_a.active(1) and not switch_b.active(1)
        for worker in (a, b, a, b):  # each adds its counts and reads the other's
            await worker[1].sync()
        switch_b.note(1, "invalid_token")  # the 101st, on B
        assert switch_b.active(1)
        assert not switch_a.active(1)  # until the flushes
        await b[1].sync()
        await a[1].sync()
        assert switch_a.active(1) and not switch_a.active(2)

    with_workers(database_url, body)


def test_a_worker_that_comes_late_adopts_a_client_that_keeps_at_it(database_url: str) -> None:
    """Regression (audit): a key was announced once, when it turned hot, and read for 5 s, so a
    worker that started (or whose flushes failed) after that never adopted it."""

    async def body(clock: Clock, a: Worker, b: Worker) -> None:
        sign_a, sign_b = a[0].limiter("sign", 10), b[0].limiter("sign", 10)
        await a[1].sync()
        assert [sign_a.hit("203.0.113.5") for _ in range(5)] == [0] * 5  # hot at half
        await a[1].sync()
        clock.now += 20  # the announcement is long gone; B comes up now
        await a[1].sync()  # the purge
        assert sign_a.hit("203.0.113.5") == 0  # the client keeps at it
        await a[1].sync()  # ... and A announces it again
        await b[1].sync()
        assert [sign_b.hit("203.0.113.5") for _ in range(4)] == [0] * 4  # 6 known, 4 left
        assert sign_b.hit("203.0.113.5") > 0

    with_workers(database_url, body)
