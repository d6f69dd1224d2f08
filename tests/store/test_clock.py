"""The clocks background work runs on: the manual one moves only when a test says so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from server.store.clock import ManualClock, SystemClock, pause

START = 1_700_000_000.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_manual_time_stands_still_until_advanced() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        await asyncio.sleep(0.01)
        assert clock.now() == START
        await clock.advance(2.5)
        assert clock.now() == START + 2.5
        with pytest.raises(ValueError):
            await clock.advance(-1)

    run(check())


def test_sleepers_wake_at_their_deadlines_in_order() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        woken: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woken.append((name, clock.now() - START))

        tasks = [
            asyncio.create_task(sleeper(name, seconds))
            for name, seconds in [("c", 30), ("a", 10), ("b", 20), ("late", 100)]
        ]
        await clock.advance(25)
        assert woken == [("a", 10), ("b", 20)]
        assert clock.now() == START + 25
        await clock.advance(5)
        assert woken[-1] == ("c", 30)
        assert clock.sleeping == 1 and clock.next_deadline == START + 100
        await clock.advance(100)
        assert woken[-1] == ("late", 100)
        await asyncio.gather(*tasks)

    run(check())


def test_a_task_that_sleeps_again_wakes_again_within_one_advance() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                await clock.sleep(10)
                ticks.append(clock.now() - START)

        task = asyncio.create_task(ticker())
        await clock.advance(35)
        assert ticks == [10, 20, 30]
        task.cancel()

    run(check())


def test_a_day_of_retries_takes_milliseconds() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        attempts = 0

        async def retrying() -> None:
            nonlocal attempts
            while True:
                attempts += 1
                await clock.sleep(60)

        started = time.perf_counter()
        task = asyncio.create_task(retrying())
        await clock.advance(24 * 3600)
        elapsed = time.perf_counter() - started
        task.cancel()
        assert attempts == 24 * 60 + 1
        assert elapsed < 2.0

    run(check())


def test_a_cancelled_sleeper_is_not_counted_or_woken() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        task = asyncio.create_task(clock.sleep(10))
        await asyncio.sleep(0)
        assert clock.sleeping == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert clock.sleeping == 0 and clock.next_deadline is None
        await clock.advance(20)
        assert task.cancelled()

    run(check())


def test_wait_for_sleepers_lets_real_io_reach_its_next_sleep() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        done: list[float] = []

        async def worker() -> None:
            await clock.sleep(5)
            await asyncio.to_thread(time.sleep, 0.05)  # more than a few turns of the loop
            done.append(clock.now() - START)
            await clock.sleep(5)
            done.append(clock.now() - START)

        task = asyncio.create_task(worker())
        await clock.wait_for_sleepers()
        await clock.advance(5)
        assert done == []  # still in its I/O: advance alone did not wait for it
        await clock.wait_for_sleepers()
        assert done == [5]
        await clock.advance(5)
        assert done == [5, 10]
        await task
        with pytest.raises(TimeoutError):
            await clock.wait_for_sleepers(timeout=0.05)

    run(check())


def test_pause_is_cut_short_by_stopping() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        stopping = asyncio.Event()
        task = asyncio.create_task(pause(clock, 3600, stopping))
        await clock.wait_for_sleepers()
        await clock.advance(10)
        assert not task.done()
        stopping.set()
        assert await asyncio.wait_for(task, 1) is True
        assert clock.sleeping == 0  # the sleep it cut short is gone
        assert clock.now() == START + 10

    run(check())


def test_pause_runs_its_course_without_stopping() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        task = asyncio.create_task(pause(clock, 30, asyncio.Event()))
        await clock.advance(30)
        assert task.done() and task.result() is False

    run(check())


def test_system_clock_is_wall_time() -> None:
    async def check() -> None:
        clock = SystemClock()
        assert abs(clock.now() - time.time()) < 1
        started = time.monotonic()
        await clock.sleep(0.05)
        assert time.monotonic() - started >= 0.04

    run(check())
