"""Group commit: signatures from all connections are written in shared transactions.

A durable commit costs one disk flush (about 0.3 ms here) whatever it holds, so committing each
signature alone caps a surge at a few thousand signatures per second and, through `databases`'
connection-per-task design on SQLite, at a few hundred. Instead each request hands its signature
to the writer and waits; the writer takes everything that has queued up, records it in one
transaction (`signatures.sign_plan`, run by the engine adapter on the write path), and answers
every waiting request only after the commit. Nobody is told "thank you" before their signature
is on disk, and no timer adds latency: a group is simply whatever arrived while the previous
commit was flushing.

The writer knows no engine. Its adapter says how many groups may commit at once (one on SQLite,
which has one writer anyway; a few on PostgreSQL, spread over counter shards) and what a
failure means: a conflict between groups is retried, a refused row makes the group retry one
by one so that it sinks no one else, and an unavailable database answers the whole group
"try later".
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from server.domain.errors import StorageUnavailable
from server.domain.signatures import Decoy, NewSignature
from server.store.engine import Engine, describe
from server.store.signatures import sign_plan
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.writer")

MAX_GROUP = 500  # signatures per transaction
MAX_WAITING = 20_000  # beyond this, new signatures are refused with 503 (back-pressure)
WAIT_TIMEOUT = 30.0  # seconds a request waits for its commit before answering 503
RETRIES = 3  # attempts of a group that conflicted with another

#: What `Writer.prepare` is: a group, and the time, in; the group to record out.
Prepare = Callable[[list[NewSignature | Decoy], int], list[NewSignature | Decoy]]
# A signature and its waiting request; None for a no-op that only waits for the next commit.
_Pending = tuple[NewSignature | Decoy | None, asyncio.Future[int | None]]


class Writer:
    #: Why the last attempt to write failed, or None once a write has succeeded again.
    failure: str | None = None
    #: When (`time.monotonic()`) a group last failed to commit.
    failed_at: float = 0.0

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        prepare: Prepare | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock  # when signatures are recorded: their `created_at`
        # Work a group needs before its transaction, run on a thread off the event loop (the
        # wiring's: sealing the signers' data, which takes two X25519 operations each and
        # releases the GIL). One thread hop per group, not per signature.
        self.prepare = prepare
        self.waiting = 0  # requests waiting for their commit
        # Signatures queued or in a group being committed, whether or not anyone still waits
        # for them (a client that hung up leaves its signature to be recorded): what the
        # back-pressure limit counts.
        self.queued = 0
        self._pending: collections.deque[_Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._known_consents: set[str] = set()
        # Futures by deadline, oldest first: one watchdog instead of a timer per request.
        self._deadlines: collections.deque[tuple[float, asyncio.Future[int | None]]] = (
            collections.deque()
        )
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._closing = False
        self._watchdog = asyncio.create_task(self._watch(), name="writer-watchdog")
        self._tasks = [
            asyncio.create_task(self._run(), name="signature-writer")
            for _ in range(self.engine.writer_concurrency)
        ]

    async def close(self) -> None:
        """Finish every queued signature, then stop."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._tasks)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)

    async def submit(self, signature: NewSignature | Decoy | None) -> int | None:
        """Record one signature; returns the petition's count once it is committed (0 for one
        that waits for confirmation), or None when the signature's token was already used by
        someone else. `None` records nothing, and returns 0 when the group it joined commits:
        a bot caught by the honeypot waits as long as a signer, so timing tells it nothing.

        Raises StorageUnavailable when the database cannot take it, or has not within
        WAIT_TIMEOUT seconds.
        """
        if self._closing:
            raise StorageUnavailable("the writer is shutting down")
        if self.queued >= MAX_WAITING:
            raise StorageUnavailable("too many signatures waiting")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self.waiting += 1
        self.queued += 1
        try:
            self._deadlines.append((loop.time() + WAIT_TIMEOUT, future))
            self._pending.append((signature, future))
            self._wake.set()
            # A client that disconnects cancels only this wait: the writer skips settled
            # futures and records the signature all the same.
            return await future
        finally:
            self.waiting -= 1

    async def _run(self) -> None:
        while self._pending or not self._closing:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            group = [self._pending.popleft() for _ in range(min(MAX_GROUP, len(self._pending)))]
            futures = [f for _, f in group]
            try:
                batch = [s for s, _ in group if s is not None]
                # One time for the group: the boxes' exact time and the rows' (hour) agree.
                now = int(self.clock())
                if self.prepare is not None and batch:
                    batch = await asyncio.to_thread(self.prepare, batch, now)
                outcome = await self._record(batch, now)
                if len(batch) < len(group):  # no-ops joined the group: they get 0
                    results = iter(outcome)
                    outcome = [0 if s is None else next(results, None) for s, _ in group]
                _settle(futures, outcome)
            except Exception as exc:  # a bug must not stop the writer for good
                logger.error("unexpected %s while writing signatures", describe(exc))
                _settle(futures, [StorageUnavailable(describe(exc)) for _ in group])
            finally:
                self.queued -= len(group)

    async def _record(self, batch: list[NewSignature | Decoy], now: int) -> list[Any]:
        for attempt in range(RETRIES):
            plan = sign_plan(
                batch,
                shard=random.randrange(self.engine.shards),
                now=int(now),
                known_consents=self._known_consents,
                sealed_events=self.engine.sealed_events,
            )
            try:
                outcome = await self.engine.run_plan(plan)
            except Exception as exc:
                kind = self.engine.classify(exc)
                if kind == "retry" and attempt < RETRIES - 1:
                    continue
                if kind == "data" and len(batch) > 1:
                    # One bad signature must not sink the others: record them one by one.
                    return [one for s in batch for one in await self._record([s], now)]
                reason = describe(exc)
                if self.failure != reason:
                    logger.error("cannot write signatures: %s", reason)
                self.failure = reason
                self.failed_at = time.monotonic()
                return [StorageUnavailable(reason) for _ in batch]
            self.failure = None
            self._known_consents.update(
                s.consent.version for s in batch if isinstance(s, NewSignature)
            )
            return outcome
        raise AssertionError("unreachable: the last attempt returns")

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


def create_writer(
    storage: Storage, clock: Callable[[], float] = time.time, prepare: Prepare | None = None
) -> Writer:
    """The group-commit writer of a storage's engine."""
    return Writer(storage.engine, clock, prepare)
