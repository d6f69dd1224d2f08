"""Group commit: signatures from all connections are written in shared transactions.

A durable commit costs one disk flush (about 0.3 ms here) whatever it holds, so committing each
signature alone caps a surge at a few thousand signatures per second and, through `databases`'
connection-per-task design on SQLite, at a few hundred. Instead each request hands its signature
to the writer and waits; the writer takes everything that has queued up, records it in one
transaction (`storage.sign_plan`), and answers every waiting request only after the commit.
Nobody is told "thank you" before their signature is on disk, and no timer adds latency: a
group is simply whatever arrived while the previous commit was flushing.

On SQLite the writer is one asyncio task holding one sqlite3 connection (SQLite allows one
writer at a time anyway), which hands only the waiting to a helper thread (see `SqliteWriter`).
On PostgreSQL a few asyncio tasks run groups concurrently on pooled connections.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server.domain.errors import StorageUnavailable
from server.domain.signatures import NewSignature
from server.store import storage

logger = logging.getLogger("petition_widget.writer")

MAX_GROUP = 500  # signatures per transaction
MAX_WAITING = 20_000  # beyond this, new signatures are refused with 503 (back-pressure)
WAIT_TIMEOUT = 30.0  # seconds a request waits for its commit before answering 503
PURGE_EVERY = 600.0  # seconds between purges of expired token nonces

_Pending = tuple[NewSignature, asyncio.Future[int | None], asyncio.AbstractEventLoop]


class Writer:
    """The interface both writers share."""

    #: Why the last attempt to write failed, or None once a write has succeeded again.
    failure: str | None = None

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # when signatures are recorded: their `created_at`
        self.waiting = 0
        # Futures by deadline, oldest first: one watchdog instead of a timer per request.
        self._deadlines: collections.deque[tuple[float, asyncio.Future[int | None]]] = (
            collections.deque()
        )
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch())
        await self._start()

    async def close(self) -> None:
        """Finish every queued signature, then stop."""
        await self._close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)

    async def _start(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _enqueue(self, item: _Pending) -> None:
        raise NotImplementedError

    async def submit(self, signature: NewSignature) -> int | None:
        """Record one signature; returns the petition's count once it is committed, or None
        when the signature's token was already used by someone else.

        Raises StorageUnavailable when the database cannot take it, or has not within
        WAIT_TIMEOUT seconds.
        """
        if self.waiting >= MAX_WAITING:
            raise StorageUnavailable("too many signatures waiting")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self.waiting += 1
        try:
            self._deadlines.append((loop.time() + WAIT_TIMEOUT, future))
            self._enqueue((signature, future, loop))
            # A client that disconnects cancels only this wait: the writer skips settled
            # futures and records the signature all the same.
            return await future
        finally:
            self.waiting -= 1

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, future = self._deadlines.popleft()
                if not future.done():
                    future.set_exception(StorageUnavailable("timed out waiting for the database"))
            # Settled futures at the front are dropped on the next pass; bound the rest.
            while self._deadlines and self._deadlines[0][1].done():
                self._deadlines.popleft()


def _settle(futures: Sequence[asyncio.Future[int | None]], outcome: Sequence[Any]) -> None:
    for future, result in zip(futures, outcome, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class SqliteWriter(Writer):
    """The statements of a group run on the event loop's own thread; only what waits goes to a
    helper thread: taking the write lock (the file lock, then `BEGIN IMMEDIATE`) and `COMMIT`
    (the disk flush). A writer thread that ran the statements itself had to win the GIL back
    from the busy event loop after each one (sqlite3 releases it around every step): under load
    a group of 25 took 4.9 ms instead of 0.9 ms, most of it waiting for the GIL.
    """

    def __init__(
        self, path: Path, synchronous: str, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock)
        self.path = path
        self.synchronous = synchronous
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._helper = concurrent.futures.ThreadPoolExecutor(1, "signature-commit")
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._known_consents: set[str] = set()
        self._next_purge = 0.0

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signature-writer")

    async def _close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._helper.shutdown()

    def _enqueue(self, item: _Pending) -> None:
        self._pending.append(item)
        self._wake.set()

    async def _run(self) -> None:
        while self._pending or not self._closing:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._pending[:MAX_GROUP]
            del self._pending[:MAX_GROUP]
            try:
                outcome = await self._record([s for s, _, _ in group])
            except Exception as exc:  # a bug must not stop the writer for good
                logger.error("unexpected %s while writing signatures", storage.describe(exc))
                outcome = [StorageUnavailable(storage.describe(exc)) for _ in group]
            _settle([f for _, f, _ in group], outcome)

    async def _off_loop(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._helper, work, *args)

    async def _record(self, batch: list[NewSignature]) -> list[Any]:
        now = self.clock()
        try:
            conn = await self._connection()
            outcome = await self._transaction(conn, batch, int(now))
        except (sqlite3.OperationalError, OSError) as exc:
            # Locked, full, read-only or failing disk: the whole group waits for better times.
            return self._unavailable(batch, exc)
        except sqlite3.Error as exc:
            if len(batch) == 1:
                logger.error("could not record a signature: %s", storage.describe(exc))
                return [StorageUnavailable(storage.describe(exc))]
            # One bad signature must not sink the others: record them one by one.
            return [one for s in batch for one in await self._record([s])]
        self.failure = None
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            with contextlib.suppress(sqlite3.Error):
                await self._off_loop(storage.purge_used_nonces_sqlite, conn, int(now))
        return outcome

    async def _transaction(
        self, conn: sqlite3.Connection, batch: list[NewSignature], now: int
    ) -> list[Any]:
        plan = storage.sign_plan(batch, shard=0, now=now, known_consents=self._known_consents)
        await self._off_loop(self._begin, conn)
        try:
            outcome = storage.run_plan_sqlite(conn, plan)
            await self._off_loop(conn.execute, "COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._known_consents.update(s.consent.version for s in batch)
        return outcome

    def _begin(self, conn: sqlite3.Connection) -> None:
        """Take the write lock (in the helper thread: it may wait for another worker).

        Writers of other worker processes queue on a file lock, which hands over the moment it
        is released, rather than in SQLite's busy handler, which polls with sleeps of up to
        100 ms: with two workers that meant seconds of latency and 503s.
        """
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise

    async def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = await self._off_loop(storage.open_sqlite, self.path, self.synchronous)
            self._conn = conn
        return self._conn

    def _unavailable(self, batch: list[NewSignature], exc: Exception) -> list[Any]:
        reason = storage.describe(exc)
        if self.failure != reason:
            logger.error("cannot write signatures: %s", reason)
        self.failure = reason
        # Start afresh next time: after an I/O error the connection may not recover.
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        return [StorageUnavailable(reason) for _ in batch]


class PostgresWriter(Writer):
    def __init__(
        self, store: storage.Storage, concurrency: int = 4, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock)
        self.store = store
        self.concurrency = concurrency
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._known_consents: set[str] = set()
        self._next_purge = 0.0

    async def _start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.concurrency)]

    async def _close(self) -> None:
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _enqueue(self, item: _Pending) -> None:
        self._queue.put_nowait(item)

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                outcome = await self._record([s for s, _, _ in group])
                _settle([f for _, f, _ in group], outcome)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _record(self, batch: list[NewSignature]) -> list[Any]:
        now = self.clock()
        for attempt in range(3):
            try:
                outcome = await self.store.sign_postgres(
                    batch,
                    shard=random.randrange(storage.POSTGRES_SHARDS),
                    now=int(now),
                    known_consents=self._known_consents,
                )
            except Exception as exc:
                kind = _postgres_failure(exc)
                if kind == "retry" and attempt < 2:
                    continue
                if kind == "unavailable" or len(batch) == 1:
                    reason = storage.describe(exc)
                    if self.failure != reason:
                        logger.error("cannot write signatures: %s", reason)
                    self.failure = reason
                    return [StorageUnavailable(reason) for _ in batch]
                return [one for s in batch for one in await self._record([s])]
            break
        self.failure = None
        self._known_consents.update(s.consent.version for s in batch)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            with contextlib.suppress(Exception):
                await self.store.purge_used_nonces(int(now))
        return list(outcome)


def _postgres_failure(exc: Exception) -> str:
    """'retry' for conflicts between concurrent groups, 'unavailable' when the server cannot
    be used, 'data' when something in the group itself was refused."""
    import asyncpg

    if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
        return "retry"
    if isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
        return "data"
    return "unavailable"


def create_writer(store: storage.Storage, clock: Callable[[], float] = time.time) -> Writer:
    if store.dialect == "sqlite":
        return SqliteWriter(store.sqlite_file, store.synchronous, clock)
    return PostgresWriter(store, clock=clock)
