"""The outbox on both engines: rows exist only with their change, claims are leases no two
workers share, failed rows back off for hours in virtual time, and stopping hands rows back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

import pytest

from server.domain.sealing import hour_after
from server.store import outbox
from server.store.clock import ManualClock
from server.store.outbox import OutboxRow
from server.store.storage import Storage
from tests.support.backends import PostgresDatabases

T = 1_700_000_000
SECRET = "signer@example.org"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def opened(url: str) -> Storage:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    return storage


async def queue(
    storage: Storage, *payloads: dict[str, Any], topic: str = "mail", now: float = T
) -> None:
    async with storage.write() as tx:
        for payload in payloads:
            await outbox.add(tx, topic, payload, now)


async def stored(storage: Storage) -> list[dict[str, Any]]:
    rows = await storage.database.fetch_all(
        "SELECT id, topic, available_at, attempts, claimed_until, last_error FROM outbox "
        "ORDER BY id"
    )
    keys = ["id", "topic", "available_at", "attempts", "claimed_until", "last_error"]
    return [dict(zip(keys, (r[i] for i in range(len(keys))), strict=True)) for r in rows]


def test_a_row_exists_only_if_its_transaction_commits(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        with pytest.raises(RuntimeError):
            async with storage.write() as tx:
                await tx.execute("INSERT INTO revisions (name, n) VALUES ('change', 1)")
                await outbox.add(tx, "mail", {"to": "rolled back"}, T)
                raise RuntimeError("the change failed")
        assert await stored(storage) == []
        assert (
            await storage.database.fetch_val("SELECT COUNT(*) FROM revisions WHERE name = 'change'")
            == 0
        )

        async with storage.write() as tx:
            await tx.execute("INSERT INTO revisions (name, n) VALUES ('change', 1)")
            await outbox.add(tx, "mail", {"to": "committed", "n": [1, 2]}, T)
        [row] = await outbox.claim(storage, "mail", 10, 30, T)
        assert row.topic == "mail" and row.payload == {"to": "committed", "n": [1, 2]}
        assert (row.created_at, row.attempts) == (T, 1)
        await storage.disconnect()

    run(check())


def test_claims_are_leases_and_an_expired_lease_hands_the_row_back(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await queue(storage, {"n": 1}, {"n": 2}, {"n": 3})
        await queue(storage, {"n": "hook"}, topic="webhook")

        first = await outbox.claim(storage, "mail", 2, 30, T)
        assert [r.payload["n"] for r in first] == [1, 2]
        assert [r.attempts for r in first] == [1, 1]
        leased = {r["id"]: r for r in await stored(storage)}
        assert all(leased[r.id]["claimed_until"] == T + 30 for r in first)

        second = await outbox.claim(storage, "mail", 10, 30, T + 1)
        assert [r.payload["n"] for r in second] == [3]  # leased rows are not handed out twice
        assert await outbox.claim(storage, "mail", 10, 30, T + 29) == []

        again = await outbox.claim(storage, "mail", 10, 30, T + 30)
        assert [(r.id, r.attempts) for r in again] == [(r.id, 2) for r in first]
        await storage.disconnect()

    run(check())


def test_a_lease_lasts_a_minute_at_most(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await queue(storage, {"n": 1})
        [row] = await outbox.claim(storage, "mail", 1, 3600, T)
        assert await outbox.claim(storage, "mail", 1, 30, T + 59) == []
        assert [r.id for r in await outbox.claim(storage, "mail", 1, 30, T + 60)] == [row.id]
        await storage.disconnect()

    run(check())


def test_complete_removes_and_retry_reschedules(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await queue(storage, {"n": 1}, {"n": 2})
        done, failed = await outbox.claim(storage, "mail", 2, 30, T)
        await outbox.complete(storage, done.id)
        assert await outbox.retry(storage, failed.id, T + 100, "TimeoutError", attempts=1)
        [row] = await stored(storage)
        assert row["id"] == failed.id
        assert (row["available_at"], row["claimed_until"]) == (T + 100, None)
        assert row["last_error"] == "TimeoutError"
        assert await outbox.claim(storage, "mail", 10, 30, T + 99) == []
        [retried] = await outbox.claim(storage, "mail", 10, 30, T + 100)
        assert retried.attempts == 2
        # A worker whose lease ran out and whose row was claimed again changes nothing.
        assert not await outbox.retry(storage, failed.id, T + 500, "Late", attempts=1)
        assert (await stored(storage))[0]["claimed_until"] == T + 130
        await storage.disconnect()

    run(check())


def test_oldest_pending_age(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        assert await outbox.oldest_pending_age(storage, T) is None
        await queue(storage, {"n": 1}, now=T)
        await queue(storage, {"n": 2}, now=T + 50)
        await outbox.claim(storage, "mail", 10, 30, T + 60)  # claimed is still pending
        assert await outbox.oldest_pending_age(storage, T + 100) == 100
        await storage.disconnect()

    run(check())


def test_oldest_pending_age_of_rows_kept_to_the_hour(database_url: str) -> None:
    """A sealed server's mail rows keep their times to the hour: their age counts from the
    hour's end, so a fresh mail reads 0, not up to an hour (an alert at ten minutes would fire
    for every mail), and a stuck one shows, at most an hour late."""

    async def check() -> None:
        storage = await opened(database_url)
        hour = T - T % 3600
        await queue(storage, {"n": 1}, now=hour)
        assert await outbox.oldest_pending_age(storage, hour + 1800, to_the_hour=True) == 0
        late = hour + 3599 + 600
        assert await outbox.oldest_pending_age(storage, late, to_the_hour=True) == 600
        assert await outbox.oldest_pending_age(storage, late) == 3599 + 600
        await storage.disconnect()

    run(check())


def test_concurrent_claimers_never_get_the_same_row(database_url: str) -> None:
    async def check() -> None:
        one, two = await opened(database_url), Storage(database_url)
        await two.connect()
        await queue(one, *({"n": i} for i in range(120)))
        claims = [outbox.claim((one, two)[i % 2], "mail", 8, 30, T) for i in range(16)]
        batches = await asyncio.gather(*claims)
        ids = [row.id for batch in batches for row in batch]
        assert len(ids) == len(set(ids)) == 120
        assert {r["attempts"] for r in await stored(one)} == {1}
        await one.disconnect()
        await two.disconnect()

    run(check())


def test_postgresql_claimers_skip_rows_another_is_claiming(postgres: PostgresDatabases) -> None:
    async def check(url: str) -> None:
        one, two = await opened(url), Storage(url)
        await two.connect()
        await queue(one, *({"n": i} for i in range(6)))
        ids = [r["id"] for r in await stored(one)]
        async with two.write() as tx:  # another claimer, mid-transaction
            await tx.fetch_all(  # all of them: a fetch of one row would lock only that one
                "SELECT id FROM outbox WHERE id IN (:a, :b, :c) FOR UPDATE",
                {"a": ids[0], "b": ids[1], "c": ids[2]},
            )
            claimed = await asyncio.wait_for(outbox.claim(one, "mail", 10, 30, T), 3)
            assert [r.id for r in claimed] == ids[3:]  # neither waited for nor took
        assert [r.id for r in await outbox.claim(one, "mail", 10, 30, T)] == ids[:3]
        await one.disconnect()
        await two.disconnect()

    run(check(postgres.create()))


def test_a_claim_with_nothing_due_does_not_wait_for_the_write_lock(database_url: str) -> None:
    async def check() -> None:
        one, two = await opened(database_url), Storage(database_url)
        await two.connect()
        await queue(one, {"n": 1}, now=T + 600)  # not due yet
        async with two.write() as tx:  # a writer holds the lock (on SQLite, the only one)
            await tx.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")
            assert await asyncio.wait_for(outbox.claim(one, "mail", 10, 30, T), 1) == []
        await one.disconnect()
        await two.disconnect()

    run(check())


def test_a_claim_without_its_look_still_takes_only_due_rows(database_url: str) -> None:
    """What `deliver` does after a full batch, when more rows are likely due."""

    async def check() -> None:
        storage = await opened(database_url)
        await queue(storage, {"n": 1}, now=T)
        await queue(storage, {"n": 2}, now=T + 600)
        [row] = await outbox.claim(storage, "mail", 10, 30, T, look=False)
        assert row.payload == {"n": 1}
        assert await outbox.claim(storage, "mail", 10, 30, T, look=False) == []
        await storage.disconnect()

    run(check())


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (12, 3600), (500, 3600)]:
        delays = [outbox.backoff(attempts, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered: failed rows do not all retry together
    assert outbox.backoff(3, first=1, cap=2, rng=rng) <= 2


async def drive(clock: ManualClock, done: Callable[[], object], limit: int = 200) -> None:
    """Let the delivery loop reach its next sleep (it does real I/O), then move time to when
    that sleep ends; until `done()`."""
    for _ in range(limit):
        await clock.wait_for_sleepers()
        if done():
            return
        deadline = clock.next_deadline
        assert deadline is not None
        await clock.advance(deadline - clock.now())
    raise AssertionError("not done")


def test_a_failing_row_is_retried_for_hours_in_virtual_time(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    failures = 12
    attempts: list[float] = []

    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, {"to": SECRET})
        stopping = asyncio.Event()

        async def handler(row: OutboxRow) -> None:
            attempts.append(clock.now())
            assert row.attempts == len(attempts)
            if len(attempts) <= failures:
                raise ConnectionRefusedError(f"cannot send to {row.payload['to']}")

        # `idle` is long here only because nobody else adds rows: the loop wakes when the row
        # is due, not on a poll.
        started = time.perf_counter()
        delivery = asyncio.create_task(
            outbox.deliver(
                storage,
                clock,
                "mail",
                handler,
                stopping,
                batch=5,
                lease=30,
                idle=24 * 3600,
                rng=random.Random(1),
            )
        )
        await drive(clock, lambda: len(attempts) > failures and clock.sleeping)
        real = time.perf_counter() - started
        stopping.set()
        await asyncio.wait_for(delivery, 5)

        assert await stored(storage) == []  # delivered at last, and gone
        assert attempts[-1] - attempts[0] > 2 * 3600  # hours of backoff...
        # ...in a fraction of a second of real time (about 0.1 s; the bound leaves room for a
        # busy machine, and a real sleep would have ended in wait_for_sleepers' TimeoutError).
        assert real < 3
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        for n, gap in enumerate(gaps, start=1):
            ceiling = min(3600, 5 * 2 ** (n - 1))
            assert ceiling / 2 <= gap <= ceiling + 1
        await storage.disconnect()

    with caplog.at_level(logging.WARNING, logger="petition_widget.outbox"):
        run(check())
    assert len(attempts) == failures + 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == failures
    assert all("ConnectionRefusedError" in w for w in warnings)
    assert SECRET not in caplog.text


def test_a_handler_that_outlives_its_lease_is_cut_off_and_retried(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, {"n": 1})
        stopping = asyncio.Event()
        calls = 0

        async def hangs(row: OutboxRow) -> None:
            nonlocal calls
            calls += 1
            stopping.set()
            await asyncio.Event().wait()

        delivery = outbox.deliver(storage, clock, "mail", hangs, stopping, batch=1, lease=0.2)
        await asyncio.wait_for(delivery, 5)
        [row] = await stored(storage)
        assert calls == 1
        assert row["last_error"] == "TimeoutError"
        assert row["claimed_until"] is None and row["attempts"] == 1
        assert row["available_at"] >= T + 2  # backoff: 5 s, jittered down to 2.5 s at least
        await storage.disconnect()

    run(check())


def test_stopping_hands_back_the_rows_not_yet_processed(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, *({"n": i} for i in range(5)))
        stopping = asyncio.Event()
        handled: list[int] = []

        async def handler(row: OutboxRow) -> None:
            handled.append(row.payload["n"])
            stopping.set()  # the process is shutting down while this row is handled

        delivery = outbox.deliver(storage, clock, "mail", handler, stopping, batch=5, lease=30)
        await asyncio.wait_for(delivery, 5)
        assert handled == [0]  # the row in hand was finished, no other was started
        left = await stored(storage)
        assert len(left) == 4
        assert all(r["claimed_until"] is None and r["attempts"] == 0 for r in left)
        # Handed back, the rows are due at once for the next worker.
        again = await outbox.claim(storage, "mail", 10, 30, clock.now())
        assert [r.payload["n"] for r in again] == [1, 2, 3, 4]
        await storage.disconnect()

    run(check())


def test_a_stopping_delivery_loop_claims_nothing() -> None:
    async def check() -> None:
        class Untouchable(Storage):
            def write(self) -> NoReturn:
                raise AssertionError("claimed while stopping")

        stopping = asyncio.Event()
        stopping.set()

        async def handler(row: OutboxRow) -> None:
            raise AssertionError

        storage = Untouchable("sqlite:///unused.db")
        await outbox.deliver(storage, ManualClock(T), "mail", handler, stopping)

    run(check())


# --- A batch's bookkeeping, written back at once ------------------------------------------------


class Counting(Storage):
    """Storage that counts its write transactions (each a commit, a flush, and on SQLite the one
    write lock)."""

    writes = 0

    def write(self) -> Any:
        self.writes += 1
        return super().write()


async def counting(url: str) -> Counting:
    storage = Counting(url)
    await storage.connect()
    await storage.migrate()
    return storage


def test_a_batch_is_written_back_in_one_transaction(database_url: str) -> None:
    async def check() -> None:
        storage = await counting(database_url)
        clock = ManualClock(T)
        await queue(storage, *({"n": i} for i in range(6)))
        stopping = asyncio.Event()

        async def handler(row: OutboxRow) -> None:
            n = row.payload["n"]
            if n == 5:
                stopping.set()  # the last row of the batch: then stop
            if n == 2:
                raise ConnectionResetError("try again")
            if n == 4:
                raise outbox.GiveUp("permanent:550")

        storage.writes = 0
        await asyncio.wait_for(
            outbox.deliver(storage, clock, "mail", handler, stopping, batch=10), 5
        )
        assert storage.writes == 2  # the claim and the write-back, not one per row
        left = {r["id"]: r for r in await stored(storage)}
        assert len(left) == 2  # the four handled rows are gone
        retried, failed = sorted(left.values(), key=lambda r: r["id"])
        assert retried["last_error"] == "ConnectionResetError" and retried["available_at"] > T
        assert retried["claimed_until"] is None and retried["attempts"] == 1
        assert failed["last_error"] == "permanent:550" and failed["available_at"] == outbox.NEVER
        row = await storage.database.fetch_one(
            "SELECT payload, failed_at FROM outbox WHERE id = :id", {"id": failed["id"]}
        )
        assert row is not None and (row[0], row[1]) == ("{}", hour_after(T))  # to the hour
        await storage.disconnect()

    run(check())


def test_rows_stay_leased_until_their_batch_is_written_back(database_url: str) -> None:
    """Handled rows are deleted only at the batch's end: until then they are leased, so no
    other worker takes them; a crash in between would leave them to be sent again."""

    async def check() -> None:
        storage, other = await opened(database_url), Storage(database_url)
        await other.connect()
        clock = ManualClock(T)
        await queue(storage, *({"n": i} for i in range(3)))
        stopping = asyncio.Event()
        seen: list[tuple[int, int, list[OutboxRow]]] = []

        async def handler(row: OutboxRow) -> None:
            # While this batch is handled, its rows are all there and none can be claimed.
            seen.append(
                (
                    row.payload["n"],
                    len(await stored(storage)),
                    await outbox.claim(other, "mail", 10, 30, T),
                )
            )
            if row.payload["n"] == 2:
                stopping.set()

        await asyncio.wait_for(outbox.deliver(storage, clock, "mail", handler, stopping), 5)
        assert seen == [(0, 3, []), (1, 3, []), (2, 3, [])]
        assert await stored(storage) == []
        await storage.disconnect()
        await other.disconnect()

    run(check())


def test_a_write_back_that_fails_leaves_the_batch_to_be_handled_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At least once: the database fails between the sends and their bookkeeping, the rows stay
    leased, and once the leases end the next delivery handles them again."""

    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, {"n": 0}, {"n": 1})
        handled: list[int] = []
        stopping = asyncio.Event()

        async def handler(row: OutboxRow) -> None:
            handled.append(row.payload["n"])

        async def broken(*args: Any) -> NoReturn:
            raise ConnectionError("the database went away")

        monkeypatch.setattr(outbox, "settle", broken)
        with pytest.raises(ConnectionError):
            await outbox.deliver(storage, clock, "mail", handler, stopping, lease=30)
        monkeypatch.undo()
        assert handled == [0, 1] and len(await stored(storage)) == 2
        assert await outbox.claim(storage, "mail", 10, 30, T + 29) == []  # still leased

        await clock.advance(30)
        task = asyncio.create_task(outbox.deliver(storage, clock, "mail", handler, stopping))
        await drive(clock, lambda: len(handled) == 4)
        stopping.set()
        await asyncio.wait_for(task, 5)
        assert handled == [0, 1, 0, 1] and await stored(storage) == []
        await storage.disconnect()

    run(check())


def test_the_scope_is_entered_once_per_batch_around_its_rows(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, *({"n": i} for i in range(7)))
        stopping = asyncio.Event()
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def scope() -> AsyncIterator[None]:
            events.append("open")
            yield
            # Closed before the write-back: its rows are all still there.
            events.append(f"close with {len(await stored(storage))} rows left")

        async def handler(row: OutboxRow) -> None:
            events.append(str(row.payload["n"]))
            if row.payload["n"] == 6:
                stopping.set()

        delivery = outbox.deliver(storage, clock, "mail", handler, stopping, batch=3, scope=scope)
        await asyncio.wait_for(delivery, 5)
        assert events == [
            "open", "0", "1", "2", "close with 7 rows left",
            "open", "3", "4", "5", "close with 4 rows left",
            "open", "6", "close with 1 rows left",
        ]  # fmt: skip
        assert await stored(storage) == []
        await storage.disconnect()

    run(check())


def test_a_cancelled_delivery_writes_back_what_its_batch_did(database_url: str) -> None:
    """Cancelled mid-row (a shutdown past its grace): the rows done are deleted, those not
    started handed back; the row cut off keeps its lease, and is sent again when it ends."""

    async def check() -> None:
        storage = await opened(database_url)
        clock = ManualClock(T)
        await queue(storage, *({"n": i} for i in range(5)))
        reached = asyncio.Event()

        async def handler(row: OutboxRow) -> None:
            if row.payload["n"] == 2:
                reached.set()
                await asyncio.Event().wait()  # a send that hangs

        task = asyncio.create_task(
            outbox.deliver(storage, clock, "mail", handler, asyncio.Event(), lease=30)
        )
        await asyncio.wait_for(reached.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        left = await stored(storage)
        assert [r["attempts"] for r in left] == [1, 0, 0]  # the row cut off, then two handed back
        assert left[0]["claimed_until"] == T + 30
        assert [r["claimed_until"] for r in left[1:]] == [None, None]
        await storage.disconnect()

    run(check())


def test_a_row_given_up_keeps_its_times_only_to_the_hour(database_url: str) -> None:
    """It stays 7 days (counted on the dashboard) beside signatures that keep their times to
    the hour: its own exact times could date them."""

    async def check() -> None:
        storage = await opened(database_url)
        queued, given_up = T + 1_234, T + 5_432  # neither on the hour
        await queue(storage, {"n": 1}, now=queued)
        stopping = asyncio.Event()

        async def handler(row: OutboxRow) -> None:
            stopping.set()
            raise outbox.GiveUp("permanent:550")

        clock = ManualClock(given_up)
        await asyncio.wait_for(outbox.deliver(storage, clock, "mail", handler, stopping), 5)
        row = await storage.database.fetch_one("SELECT created_at, failed_at FROM outbox")
        assert row is not None
        assert (row[0], row[1]) == (queued - queued % 3600, hour_after(given_up))
        await storage.disconnect()

    run(check())
