"""Time for background work, injected: the system's in production, a manual one in tests.

Retries back off for hours and periodic jobs run every few minutes; a test that waited for them
in real time would take a day. Everything that waits in `runner` and `outbox` therefore asks a
`Clock` for the time and for its sleeps. `ManualClock` holds virtual time that moves only when a
test calls `advance()`, which wakes sleepers in deadline order and lets each woken task run on
to its next sleep before time moves on: "24 hours of retries" then takes milliseconds.

Work that does real I/O between sleeps (a database round trip) needs more than a few turns of
the event loop to reach its next sleep; `wait_for_sleepers()` waits, in real time, until it has.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

YIELDS = 20  # turns of the event loop `advance` gives woken tasks before moving time on


class Clock(Protocol):
    def now(self) -> float:
        """Wall time, in seconds since the epoch (what rows store as `created_at`)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Stopping(Protocol):
    """The signal a job is told to stop by: an `asyncio.Event`, or anything shaped like one."""

    def is_set(self) -> bool: ...

    async def wait(self) -> object: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def pause(clock: Clock, seconds: float, stopping: Stopping) -> bool:
    """Sleep on `clock`, cut short when `stopping` is set; returns whether it is set."""
    if stopping.is_set():
        return True
    sleep = asyncio.ensure_future(clock.sleep(seconds))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({sleep, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleep.cancel()
        stop.cancel()
        # Wait for both to be gone, so that a manual clock no longer counts this sleeper.
        await asyncio.gather(sleep, stop, return_exceptions=True)
    return stopping.is_set()


class ManualClock:
    """Virtual time for tests: it stands still until `advance()` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._order = itertools.count()  # sleepers with the same deadline wake in arrival order
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._watchers: list[tuple[int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        self._notify()
        await future  # cancelling the sleeper cancels the future: `advance` skips it

    @property
    def sleeping(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(not future.done() for _, _, future in self._sleepers)

    @property
    def next_deadline(self) -> float | None:
        """When the next sleeper is due, or None if nobody sleeps."""
        due = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return min(due, default=None)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, step by step: each sleeper due by then is woken at its
        own deadline, in deadline order, and woken tasks run (to their next sleep, if that takes
        no I/O) before time moves on, so a task sleeping again inside the span wakes again."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        await _let_run()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():  # cancelled
                continue
            self._now = max(self._now, deadline)
            future.set_result(None)
            await _let_run()
        self._now = target
        await _let_run()

    async def wait_for_sleepers(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait, in real time, until at least `count` tasks sleep on this clock: the way to let
        work that does real I/O reach its next sleep. Raises TimeoutError after `timeout`."""
        if self.sleeping >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._watchers.append((count, future))
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._watchers = [(n, f) for n, f in self._watchers if f is not future]

    def _notify(self) -> None:
        sleeping = self.sleeping
        for count, future in self._watchers:
            if sleeping >= count and not future.done():
                future.set_result(None)


async def _let_run() -> None:
    for _ in range(YIELDS):
        await asyncio.sleep(0)
