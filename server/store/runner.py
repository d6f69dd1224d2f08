"""The job runner: every piece of background work of a process, started and stopped together.

Background work (delivering the outbox, purging expired rows) used to mean a bare task per
feature, and a bare task that raises dies without a word: mail would stop until someone noticed.
Here each job is registered by name and supervised: a job that raises is logged and restarted
after a backoff (1 s, doubling up to 60 s), its status is kept for health checks, and stopping
gives every job a grace period to finish the step it is in before it is cancelled.

Failures are logged by exception type only, never by message: database errors quote the values
of the row that failed, and those can be a signer's email. Backoffs and periods are slept on the
injected clock, so tests run hours of them in milliseconds; the stop grace is real time, because
a process must shut down even when a test's clock stands still.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from server.store.clock import Clock, pause

FIRST_BACKOFF = 1.0  # seconds before a failed job is restarted the first time
MAX_BACKOFF = 60.0  # the longest wait; a job that ran this long without failing starts over
CANCEL_WAIT = 1.0  # real seconds to wait for jobs cancelled after the grace to end

#: A forever job is handed the runner's stop signal, set once `stop()` is called.
ForeverJob = Callable[[asyncio.Event], Awaitable[None]]
PeriodicJob = Callable[[], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class JobStatus:
    name: str
    runs: int  # times the job's function was called (each period, or each (re)start)
    failures: int
    last_failure: str | None  # the exception's type name, or "returned" (a forever job ended)
    last_failure_at: float | None  # clock time
    alive: bool  # its task is running (possibly waiting to restart after a failure)


@dataclasses.dataclass
class _Job:
    name: str
    period: float | None  # None: a forever job
    fn: Callable[..., Awaitable[None]]
    runs: int = 0
    failures: int = 0
    last_failure: str | None = None
    last_failure_at: float | None = None
    task: asyncio.Task[None] | None = None


class JobRunner:
    def __init__(self, clock: Clock, logger: logging.Logger) -> None:
        self.clock = clock
        self.logger = logger
        self._jobs: dict[str, _Job] = {}
        self._stopping = asyncio.Event()
        self._started = False

    def forever(self, name: str, fn: ForeverJob) -> None:
        """A long-running job: `fn(stopping)` should return soon after `stopping` is set."""
        self._add(_Job(name, None, fn))

    def every(self, name: str, seconds: float, fn: PeriodicJob) -> None:
        """Periodic work: `fn()`, then `seconds` of sleep, from start until stop."""
        if seconds <= 0:
            raise ValueError("a periodic job needs a positive period")
        self._add(_Job(name, seconds, fn))

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the job runner has already been started")
        self._started = True
        for job in self._jobs.values():
            body = self._forever(job) if job.period is None else self._every(job)
            job.task = asyncio.create_task(body, name=f"job:{job.name}")

    async def stop(self, grace: float) -> None:
        """Ask every job to stop, wait up to `grace` seconds for them, then cancel the rest."""
        self._stopping.set()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            self.logger.warning("job %s did not stop within %.1f s: cancelled", _name(task), grace)
            task.cancel()
        if late:
            _, stuck = await asyncio.wait(late, timeout=CANCEL_WAIT)
            for task in stuck:
                self.logger.error("job %s ignores cancellation", _name(task))

    def status(self) -> dict[str, JobStatus]:
        return {
            job.name: JobStatus(
                name=job.name,
                runs=job.runs,
                failures=job.failures,
                last_failure=job.last_failure,
                last_failure_at=job.last_failure_at,
                alive=job.task is not None and not job.task.done(),
            )
            for job in self._jobs.values()
        }

    def _add(self, job: _Job) -> None:
        if self._started:
            raise RuntimeError("jobs are registered before the runner starts")
        if job.name in self._jobs:
            raise ValueError(f"a job named {job.name!r} is already registered")
        self._jobs[job.name] = job

    async def _forever(self, job: _Job) -> None:
        delay = FIRST_BACKOFF
        while not self._stopping.is_set():
            job.runs += 1
            started = self.clock.now()
            try:
                await job.fn(self._stopping)
                if self._stopping.is_set():
                    return
                kind = "returned"  # ended on its own: restarted like a failure, not left dead
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                kind = "CancelledError"
            except Exception as exc:
                kind = type(exc).__name__
            if self.clock.now() - started >= MAX_BACKOFF:
                delay = FIRST_BACKOFF  # it had been running fine: this failure is a fresh one
            self._failed(job, kind, delay)
            if await pause(self.clock, delay, self._stopping):
                return
            delay = min(delay * 2, MAX_BACKOFF)

    async def _every(self, job: _Job) -> None:
        assert job.period is not None
        delay = FIRST_BACKOFF
        while not self._stopping.is_set():
            job.runs += 1
            wait, kind = job.period, None
            try:
                await job.fn()
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                kind = "CancelledError"
            except Exception as exc:
                kind = type(exc).__name__
            if kind is None:
                delay = FIRST_BACKOFF
            else:
                self._failed(job, kind, delay)
                wait, delay = delay, min(delay * 2, MAX_BACKOFF)
            if await pause(self.clock, wait, self._stopping):
                return

    def _failed(self, job: _Job, kind: str, delay: float) -> None:
        job.failures += 1
        job.last_failure = kind
        job.last_failure_at = self.clock.now()
        self.logger.error("job %s failed (%s); restarting in %.0f s", job.name, kind, delay)


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled, as opposed to a CancelledError that
    escaped from something the job awaited (which would otherwise end the job unnoticed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _name(task: asyncio.Task[None]) -> str:
    return task.get_name().removeprefix("job:")
