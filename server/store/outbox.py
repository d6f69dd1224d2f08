"""The outbox: work that must follow a change, written in the change's own transaction.

A confirmation mail or a partner's webhook must go out if and only if the signature that causes
it was committed. Sending from the request cannot promise that (the commit may fail after the
send, the process may die before it), so the request writes an outbox row in the same
transaction as the change (`add`), and a job delivers it afterwards (`deliver`): a rollback
leaves no row, a crash leaves the row for the next worker. Delivery is at least once; handlers
must tolerate a repeat.

Rows are claimed as leases (`claim`): a short transaction of its own sets `claimed_until` and
moves `available_at` to the lease's end, then commits, so no transaction stays open while a
handler talks to the network, and a row whose worker died is due again once its lease ends.
On PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP LOCKED`, which the
engine adapter supplies); on SQLite the write path lets one claimer in at a time. Leases are
capped at 60 s and a handler is cut off when its lease ends, so a slow handler cannot overlap
with the worker that claims its row next. A failed row is tried again after a jittered
exponential backoff (5 s doubling up to an hour); its error is kept, and logged, as an exception
type only: messages can quote a signer's email.

What became of a claimed batch is written back at its end, in one write transaction (`settle`):
the rows handled are deleted, the failed ones rescheduled or given up, the ones not started
handed back. A transaction per row would be a disk flush per row and, on SQLite, the one write
lock taken from the signature writer once per mail. So a row stays leased, and in the table,
from its claim until its batch ends: a crash (or a database error) in between leaves it to be
handled again once its lease ends, and a mail already sent is then sent twice. At least once
allows that, and so must every handler.

Times are whole seconds since the epoch, like every timestamp in the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from server.domain.errors import PetitionWidgetError
from server.domain.sealing import HOUR, hour_after
from server.store.clock import Clock, Stopping, pause
from server.store.engine import Transaction
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.outbox")

MAX_LEASE = 60.0  # seconds: a claim's longest lease
NEVER = 2**62  # the `available_at` of a row that failed for good: never due again


class GiveUp(PetitionWidgetError):
    """Raised by a handler when its row can never succeed (a mail server's permanent refusal,
    or retries for longer than the row's kind allows): the row is marked failed at once, keeps
    nothing of its payload, and is only counted (`counts`) until `purge_failed` removes it.
    `kind` says why, for the record: never a message, which could quote an address."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


MIN_IDLE = 0.1  # seconds: the shortest wait when nothing is due, so a miss cannot spin


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: int
    attempts: int  # including the claim that returned this row


Handler = Callable[[OutboxRow], Awaitable[None]]
#: Entered around the handling of each claimed batch: what its rows share (one SMTP connection).
Scope = Callable[[], contextlib.AbstractAsyncContextManager[object]]

_ADD = """
INSERT INTO outbox (topic, payload, created_at, available_at)
VALUES (:topic, :payload, :now, :now)"""
_CLAIM = """
UPDATE outbox SET claimed_until = :until, available_at = :until, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM outbox WHERE topic = :topic AND available_at <= :now
    ORDER BY available_at, id LIMIT :limit{lock}
)
RETURNING id, topic, payload, created_at, attempts"""
_ANY_DUE = "SELECT id FROM outbox WHERE topic = :topic AND available_at <= :now LIMIT 1"
_RETRY = """
UPDATE outbox SET available_at = :at, claimed_until = NULL, last_error = :error
WHERE id = :id"""
_RELEASE = """
UPDATE outbox SET available_at = :now, claimed_until = NULL, attempts = attempts - 1
WHERE id = :id AND attempts = :attempts"""
_NEXT_DUE = "SELECT MIN(available_at) FROM outbox WHERE topic = :topic AND failed_at IS NULL"
# A row given up keeps nothing of its payload, and its times only to the hour (it stays 7
# days beside the signatures, which keep theirs to the hour: exact times could date them).
# `failed_at` is rounded up (`_failed_at`), so a row is kept at least `FAILED_KEPT`.
_FAIL = """
UPDATE outbox SET payload = '{}', failed_at = :now,
    created_at = created_at - created_at % 3600, available_at = :never, claimed_until = NULL,
    last_error = :kind
WHERE id = :id"""
_DELETE_MANY = 200  # ids per DELETE: far under every engine's limit on parameters


async def add(tx: Transaction, topic: str, payload: dict[str, Any], now: float) -> None:
    """Queue `payload` for `topic`, inside the caller's transaction: it exists only if that
    transaction commits."""
    values = {"topic": topic, "payload": json.dumps(payload), "now": int(now)}
    await tx.execute(_ADD, values)


async def claim(
    storage: Storage,
    topic: str,
    limit: int,
    lease_seconds: float,
    now: float,
    *,
    look: bool = True,
) -> list[OutboxRow]:
    """Lease up to `limit` due rows of `topic`, oldest due first, for `lease_seconds` (at most
    MAX_LEASE), counting an attempt for each; committed before it returns. `look=False` skips
    the look for a due row, for a caller that has reason to expect one."""
    if lease_seconds <= 0:
        raise ValueError("a lease must last some time")
    until = math.ceil(now + min(lease_seconds, MAX_LEASE))
    values = {"topic": topic, "now": int(now), "until": until, "limit": limit}
    # Look first, without the write lock: an idle outbox, polled every few seconds, then never
    # takes SQLite's one write lock from the signature writer.
    due = {"topic": topic, "now": int(now)}
    if look and await storage.database.fetch_val(_ANY_DUE, due) is None:
        return []
    async with storage.write() as tx:
        # The adapter's clause for passing over rows another claimer is locking, if it needs one.
        rows = await tx.fetch_all(_CLAIM.format(lock=storage.engine.skip_locked), values)
    claimed = [
        OutboxRow(id=r[0], topic=r[1], payload=json.loads(r[2]), created_at=r[3], attempts=r[4])
        for r in rows
    ]
    return sorted(claimed, key=lambda row: row.id)


async def complete(storage: Storage, row_id: int) -> None:
    """The row's work is done: it goes."""
    async with storage.write() as tx:
        await _delete(tx, [row_id])


async def retry(
    storage: Storage,
    row_id: int,
    available_at: float,
    error_kind: str,
    *,
    attempts: int | None = None,
) -> bool:
    """End the row's lease and try it again at `available_at`, noting why it failed (a kind,
    such as an exception's type name: never a message). With `attempts` (the row's, as claimed),
    nothing changes if it has been claimed again since, as a lease that ran out lets another
    worker do. Returns whether the row was changed."""
    sql, values = _RETRY, {"id": row_id, "at": math.ceil(available_at), "error": error_kind}
    if attempts is not None:
        sql, values = sql + " AND attempts = :attempts", {**values, "attempts": attempts}
    async with storage.write() as tx:
        changed = await tx.fetch_all(sql + " RETURNING id", values)
    return bool(changed)


async def release(storage: Storage, rows: Sequence[OutboxRow], now: float) -> int:
    """Hand back leases that were not used: the rows are due at once, and the claim does not
    count as an attempt. Rows claimed again since are left alone. Returns how many went back."""
    if not rows:
        return 0
    released = 0
    async with storage.write() as tx:
        for row in rows:
            values = {"id": row.id, "attempts": row.attempts, "now": int(now)}
            released += len(await tx.fetch_all(_RELEASE + " RETURNING id", values))
    return released


async def oldest_pending_age(
    storage: Storage, now: float, topic: str | None = None, *, to_the_hour: bool = False
) -> float | None:
    """Seconds since the oldest row still to deliver (claimed or not) was added, of one topic
    or all; None when there is none. A health check's figure: it grows when delivery is stuck.
    Rows that failed for good are not waiting: they do not count. `to_the_hour`: the rows keep
    their times rounded down to the hour (a sealed server's mails), so the age is counted from
    the end of that hour: up to an hour low, never high, so an alert on it does not fire for
    every fresh mail."""
    sql = "SELECT MIN(created_at) FROM outbox WHERE failed_at IS NULL"
    values: dict[str, Any] = {}
    if topic is not None:
        sql, values = sql + " AND topic = :topic", {"topic": topic}
    oldest = await storage.database.fetch_val(sql, values)
    if oldest is None:
        return None
    return max(0.0, now - float(oldest) - (HOUR - 1 if to_the_hour else 0))


async def fail(storage: Storage, row_id: int, now: float, kind: str) -> None:
    """Mark a row failed for good (see `GiveUp`): its payload, which may hold an address, is
    dropped at once."""
    async with storage.write() as tx:
        values = {"id": row_id, "now": hour_after(int(now)), "never": NEVER, "kind": kind}
        await tx.execute(_FAIL, values)


@dataclasses.dataclass
class Outcome:
    """What became of the rows of one claimed batch, for `settle` to write back at once."""

    done: list[int] = dataclasses.field(default_factory=list)  # handled: deleted
    # Failed, to be tried again: (row as claimed, when, the failure's kind).
    retry: list[tuple[OutboxRow, float, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # given up: (id, kind)
    unstarted: list[OutboxRow] = dataclasses.field(default_factory=list)  # handed back

    def __bool__(self) -> bool:
        return bool(self.done or self.retry or self.failed or self.unstarted)


async def settle(storage: Storage, outcome: Outcome, now: float) -> None:
    """Write back what became of a batch in one transaction, as `complete`, `retry` (guarded
    by the attempts claimed), `fail` and `release` would each, one by one, do."""
    if not outcome:
        return
    async with storage.write() as tx:
        await _delete(tx, outcome.done)
        for row, at, kind in outcome.retry:
            values = {"id": row.id, "at": math.ceil(at), "error": kind, "attempts": row.attempts}
            await tx.execute(_RETRY + " AND attempts = :attempts", values)
        for row_id, kind in outcome.failed:
            values = {"id": row_id, "now": hour_after(int(now)), "never": NEVER, "kind": kind}
            await tx.execute(_FAIL, values)
        for row in outcome.unstarted:
            values = {"id": row.id, "attempts": row.attempts, "now": int(now)}
            await tx.execute(_RELEASE, values)


async def _delete(tx: Transaction, ids: Iterable[int]) -> None:
    ids = list(ids)
    for start in range(0, len(ids), _DELETE_MANY):
        chunk = ids[start : start + _DELETE_MANY]
        names = {f"id{i}": row_id for i, row_id in enumerate(chunk)}
        # Only parameter names are formatted in; the ids are bound.
        marks = ", ".join(":" + name for name in names)
        await tx.execute(f"DELETE FROM outbox WHERE id IN ({marks})", names)  # noqa: S608


@dataclasses.dataclass(frozen=True)
class Counts:
    waiting: int  # still to deliver, claimed or not
    failed: int  # failed for good, kept only as a count


async def counts(storage: Storage, topic: str) -> Counts:
    """How many rows of `topic` wait and how many failed: figures for the dashboard, which
    never shows what the rows hold."""
    row = await storage.database.fetch_one(
        "SELECT COUNT(*) - COUNT(failed_at), COUNT(failed_at) FROM outbox WHERE topic = :topic",
        {"topic": topic},
    )
    assert row is not None
    return Counts(waiting=int(row[0]), failed=int(row[1]))


async def purge_failed(storage: Storage, before: float) -> None:
    """Forget rows that failed for good before `before`: they were kept to be counted."""
    async with storage.write() as tx:
        await tx.execute(
            "DELETE FROM outbox WHERE failed_at IS NOT NULL AND failed_at < :before",
            {"before": int(before)},
        )


def backoff(
    attempts: int, first: float = 5.0, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: `first`, doubling each time, up
    to `cap`, each drawn from the upper half of that so failed rows do not retry in step."""
    ceiling = min(cap, first * 2.0 ** min(max(attempts, 1) - 1, 64))
    return ceiling * (rng or _RNG).uniform(0.5, 1.0)


_RNG = random.Random()


async def deliver(
    storage: Storage,
    clock: Clock,
    topic: str,
    handler: Handler,
    stopping: Stopping,
    *,
    batch: int = 10,
    lease: float = 30.0,
    idle: float = 5.0,
    rng: random.Random | None = None,
    scope: Scope | None = None,
    drained: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Deliver `topic`'s rows until `stopping` is set: claim a batch, run `handler(row)` on each
    outside any transaction (inside `scope()`, when given, entered once per batch), then write
    back in one transaction what became of them (`settle`): the rows it handled are deleted,
    those it raised on retried after a backoff, or failed for good on `GiveUp`. When nothing is
    due, wait for the next due row, or `idle` seconds at most (rows added elsewhere are not
    announced). Once stopping, claims no more and hands back the rows of its batch it has not
    started. Errors of the database itself are raised: the job runner restarts the loop after
    a backoff. `drained`, when given, is awaited once each time nothing is due after some rows
    were handled (the mail job resets SQLite's WAL then: its frames hold deleted addresses)."""
    lease = min(lease, MAX_LEASE)
    full = False
    handled = False
    while not stopping.is_set():
        now = clock.now()
        # After a full batch more rows are likely due (a backlog): the look before the claim,
        # a read of its own (on SQLite a new connection), would only find them again.
        rows = await claim(storage, topic, batch, lease, now, look=not full)
        full = len(rows) == batch
        if not rows:
            if handled and drained is not None:
                handled = False
                await drained()
            if await pause(clock, await _idle_wait(storage, clock, topic, idle), stopping):
                return
            continue
        lease_end = now + lease  # no later than the stored lease, which is rounded up
        pending = list(rows)
        outcome = Outcome()
        try:
            async with scope() if scope is not None else contextlib.nullcontext():
                while pending and not stopping.is_set():
                    # A row started with little lease left would likely be cut off: hand it
                    # back. (The batch's bookkeeping then comes before its leases end.)
                    left = lease_end - clock.now()
                    if left < lease / 4:
                        break
                    await _handle(clock, pending.pop(0), handler, left, rng, outcome)
        finally:
            outcome.unstarted = pending
            # Also when cancelled: rows sent and not written back would be sent again.
            await settle(storage, outcome, clock.now())
            handled = True


async def _handle(
    clock: Clock,
    row: OutboxRow,
    handler: Handler,
    left: float,
    rng: random.Random | None,
    outcome: Outcome,
) -> None:
    try:
        # The lease is in clock time; the cut-off is real time, which it is in production.
        async with asyncio.timeout(left):
            await handler(row)
    except GiveUp as given_up:
        logger.warning(
            "outbox %s: row %d failed for good (%s) on attempt %d",
            row.topic, row.id, given_up.kind, row.attempts,
        )  # fmt: skip
        outcome.failed.append((row.id, given_up.kind))
    except Exception as exc:
        kind = type(exc).__name__
        delay = backoff(row.attempts, rng=rng)
        logger.warning(
            "outbox %s: row %d failed (%s) on attempt %d; next in %.0f s",
            row.topic, row.id, kind, row.attempts, delay,
        )  # fmt: skip
        outcome.retry.append((row, clock.now() + delay, kind))
    else:
        outcome.done.append(row.id)


async def _idle_wait(storage: Storage, clock: Clock, topic: str, idle: float) -> float:
    """How long to wait before claiming again: until the next row is due, at most `idle`."""
    next_due = await storage.database.fetch_val(_NEXT_DUE, {"topic": topic})
    if next_due is None:
        return idle
    return max(MIN_IDLE, min(idle, float(next_due) - clock.now()))
