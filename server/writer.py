"""Group commit: signatures from all connections are written in shared transactions.

A durable commit costs one disk flush (about 0.3 ms here) whatever it holds, so committing each
signature alone caps a surge at a few thousand signatures per second and, through `databases`'
connection-per-task design on SQLite, at a few hundred. Instead each request hands its signature
to the writer and waits; the writer takes everything that has queued up, records it in one
transaction (`storage.sign_plan`), and answers every waiting request only after the commit.
Nobody is told "thank you" before their signature is on disk, and no timer adds latency: a
group is simply whatever arrived while the previous commit was flushing.

On SQLite the writer is one thread holding one sqlite3 connection (SQLite allows one writer at a
time anyway). On PostgreSQL a few asyncio tasks run groups concurrently on pooled connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server import storage
from server.signatures import NewSignature
from server.storage import StorageUnavailable

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

    def __init__(self) -> None:
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
    def __init__(self, path: Path, synchronous: str) -> None:
        super().__init__()
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="signature-writer", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._known_consents: set[str] = set()
        self._next_purge = 0.0

    async def _start(self) -> None:
        self._thread.start()

    async def _close(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _enqueue(self, item: _Pending) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._write(group)
            if stop:
                break
        if self._conn is not None:
            self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    def _write(self, group: list[_Pending]) -> None:
        outcome = self._record([s for s, _, _ in group])
        loop = group[0][2]
        futures = [f for _, f, _ in group]
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, futures, outcome)

    def _record(self, batch: list[NewSignature]) -> list[Any]:
        now = time.time()
        try:
            conn = self._connection()
            outcome = self._transaction(conn, batch, int(now))
        except (sqlite3.OperationalError, OSError) as exc:
            # Locked, full, read-only or failing disk: the whole group waits for better times.
            return self._unavailable(batch, exc)
        except sqlite3.Error as exc:
            if len(batch) == 1:
                logger.error("could not record a signature: %s", storage.describe(exc))
                return [StorageUnavailable(storage.describe(exc))]
            # One bad signature must not sink the others: record them one by one.
            return [one for s in batch for one in self._record([s])]
        self.failure = None
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            with contextlib.suppress(sqlite3.Error):
                storage.purge_used_nonces_sqlite(conn, int(now))
        return outcome

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[NewSignature], now: int
    ) -> list[Any]:
        plan = storage.sign_plan(batch, shard=0, now=now, known_consents=self._known_consents)
        # Writers of other worker processes queue on a file lock, which hands over the moment
        # it is released, rather than in SQLite's busy handler, which polls with sleeps of up
        # to 100 ms: with two workers that meant seconds of latency and 503s.
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            outcome = storage.run_plan_sqlite(conn, plan)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._known_consents.update(s.consent.version for s in batch)
        return list(outcome)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = storage.open_sqlite(self.path, self.synchronous)
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
    def __init__(self, store: storage.Storage, concurrency: int = 4) -> None:
        super().__init__()
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
        now = time.time()
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


def create_writer(store: storage.Storage) -> Writer:
    if store.dialect == "sqlite":
        return SqliteWriter(store.sqlite_file, store.synchronous)
    return PostgresWriter(store)
