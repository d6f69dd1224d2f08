"""The job runner: failing jobs come back and say why (by type only), stop is graceful."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from server.store.clock import ManualClock
from server.store.runner import JobRunner

START = 1_700_000_000.0
SECRET = "signer@example.org"
LOG = logging.getLogger("test.runner")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_a_crashing_job_is_restarted_with_backoff_and_logged_by_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        started: list[float] = []

        async def flaky(stopping: asyncio.Event) -> None:
            started.append(clock.now() - START)
            if len(started) <= 3:
                raise ValueError(f"duplicate key: {SECRET}")
            await stopping.wait()

        runner.forever("flaky", flaky)
        await runner.start()
        await clock.advance(60)
        assert started == [0, 1, 3, 7]  # backoff 1 s, 2 s, 4 s
        status = runner.status()["flaky"]
        assert (status.runs, status.failures, status.last_failure) == (4, 3, "ValueError")
        assert status.last_failure_at == START + 3
        assert status.alive
        await runner.stop(grace=1)
        assert not runner.status()["flaky"].alive

    with caplog.at_level(logging.INFO, logger="test.runner"):
        run(check())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all("flaky" in r.getMessage() and "ValueError" in r.getMessage() for r in errors)
    assert SECRET not in caplog.text
    assert not any(r.exc_info for r in caplog.records)  # a traceback would carry the message


def test_backoff_doubles_up_to_a_minute() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        started: list[float] = []

        async def broken(stopping: asyncio.Event) -> None:
            started.append(clock.now() - START)
            raise OSError

        runner.forever("broken", broken)
        await runner.start()
        await clock.advance(400)
        gaps = [b - a for a, b in itertools.pairwise(started)]
        assert gaps[:8] == [1, 2, 4, 8, 16, 32, 60, 60]
        assert runner.status()["broken"].alive  # never given up on
        await runner.stop(grace=1)

    run(check())


def test_backoff_starts_over_for_a_job_that_had_been_running_fine() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        started: list[float] = []

        async def job(stopping: asyncio.Event) -> None:
            started.append(clock.now() - START)
            if len(started) == 4:
                await clock.sleep(100)  # a long healthy run, then a fresh failure
            raise OSError

        runner.forever("job", job)
        await runner.start()
        await clock.advance(120)
        assert started[:6] == [0, 1, 3, 7, 108, 110]
        await runner.stop(grace=1)

    run(check())


def test_a_job_that_returns_early_is_restarted_and_counted() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        calls = 0

        async def quits(stopping: asyncio.Event) -> None:
            nonlocal calls
            calls += 1

        runner.forever("quits", quits)
        await runner.start()
        await clock.advance(2)
        assert calls == 2
        status = runner.status()["quits"]
        assert status.failures == 2 and status.last_failure == "returned"
        await runner.stop(grace=1)

    run(check())


def test_a_stray_cancelled_error_does_not_end_a_job_unnoticed() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        calls = 0

        async def awaits_a_cancelled_future(stopping: asyncio.Event) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                future = asyncio.get_running_loop().create_future()
                future.cancel()
                await future  # CancelledError, though nobody cancelled the job
            await stopping.wait()

        runner.forever("stray", awaits_a_cancelled_future)
        await runner.start()
        await clock.advance(5)
        status = runner.status()["stray"]
        assert calls == 2 and status.alive
        assert (status.failures, status.last_failure) == (1, "CancelledError")
        await runner.stop(grace=1)

    run(check())


def test_periodic_jobs_keep_their_cadence() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        ran: list[float] = []

        async def tick() -> None:
            ran.append(clock.now() - START)

        runner.every("tick", 10, tick)
        await runner.start()
        await clock.advance(35)
        assert ran == [0, 10, 20, 30]
        assert runner.status()["tick"].runs == 4
        await runner.stop(grace=1)

    run(check())


def test_a_failing_periodic_job_backs_off_then_resumes_its_cadence() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        ran: list[float] = []

        async def purge() -> None:
            ran.append(clock.now() - START)
            if len(ran) in (2, 3, 6):
                raise ConnectionError

        runner.every("purge", 10, purge)
        await runner.start()
        await clock.advance(40)
        # Fails at 10 and 11 (1 s, 2 s of backoff), succeeds, fails again at 33: the backoff
        # starts over at 1 s after a success.
        assert ran == [0, 10, 11, 13, 23, 33, 34]
        status = runner.status()["purge"]
        assert (status.runs, status.failures, status.last_failure) == (7, 3, "ConnectionError")
        await runner.stop(grace=1)

    run(check())


def test_stop_lets_a_job_finish_its_step(caplog: pytest.LogCaptureFixture) -> None:
    async def check() -> None:
        runner = JobRunner(ManualClock(START), LOG)
        step_started = asyncio.Event()
        steps = {"started": 0, "finished": 0, "cancelled": 0}

        async def worker(stopping: asyncio.Event) -> None:
            while not stopping.is_set():
                steps["started"] += 1
                step_started.set()
                try:
                    await asyncio.sleep(0.2)  # real work, in real time
                except asyncio.CancelledError:
                    steps["cancelled"] += 1
                    raise
                steps["finished"] += 1

        runner.forever("worker", worker)
        await runner.start()
        await step_started.wait()
        began = time.monotonic()
        await runner.stop(grace=5)
        assert time.monotonic() - began < 2  # returned once the step was done, not at grace
        assert steps == {"started": 1, "finished": 1, "cancelled": 0}
        status = runner.status()["worker"]
        assert not status.alive and status.failures == 0

    with caplog.at_level(logging.WARNING, logger="test.runner"):
        run(check())
    assert caplog.records == []


def test_stop_cancels_a_job_that_overruns_the_grace_and_that_is_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check() -> None:
        runner = JobRunner(ManualClock(START), LOG)
        cancelled = asyncio.Event()

        async def stubborn(stopping: asyncio.Event) -> None:
            try:
                await asyncio.Event().wait()  # ignores `stopping`
            except asyncio.CancelledError:
                cancelled.set()
                raise

        runner.forever("stubborn", stubborn)
        await runner.start()
        await asyncio.sleep(0)
        began = time.monotonic()
        await runner.stop(grace=0.1)
        assert 0.09 <= time.monotonic() - began < 1.5
        assert cancelled.is_set()
        status = runner.status()["stubborn"]
        assert not status.alive and status.failures == 0 and status.last_failure is None

    with caplog.at_level(logging.WARNING, logger="test.runner"):
        run(check())
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "stubborn" in caplog.records[0].getMessage()


def test_stop_wakes_jobs_sleeping_on_a_clock_nobody_advances() -> None:
    async def check() -> None:
        clock = ManualClock(START)
        runner = JobRunner(clock, LOG)
        cancelled = False

        async def hourly() -> None:
            pass

        async def crashing(stopping: asyncio.Event) -> None:
            raise RuntimeError

        async def waiting(stopping: asyncio.Event) -> None:
            nonlocal cancelled
            try:
                await stopping.wait()
            except asyncio.CancelledError:
                cancelled = True
                raise

        runner.every("hourly", 3600, hourly)
        runner.forever("crashing", crashing)  # stopped while waiting to restart
        runner.forever("waiting", waiting)
        await runner.start()
        await clock.wait_for_sleepers(2)
        began = time.monotonic()
        await runner.stop(grace=5)
        assert time.monotonic() - began < 1
        assert not cancelled
        assert not any(s.alive for s in runner.status().values())
        assert runner.status()["hourly"].runs == 1

    run(check())


def test_jobs_are_registered_once_and_before_start() -> None:
    async def check() -> None:
        runner = JobRunner(ManualClock(START), LOG)

        async def job() -> None:
            pass

        runner.every("job", 1, job)
        with pytest.raises(ValueError):
            runner.every("job", 1, job)
        with pytest.raises(ValueError):
            runner.every("other", 0, job)
        await runner.start()
        with pytest.raises(RuntimeError):
            runner.every("late", 1, job)
        with pytest.raises(RuntimeError):
            await runner.start()
        await runner.stop(grace=1)

    run(check())
