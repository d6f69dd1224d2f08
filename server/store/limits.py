"""The shared store of rate limits: what makes every worker's and host's limits one.

Two scratch tables, made by each engine's adapter where they cost least (`Engine.limits`):
on PostgreSQL, UNLOGGED tables in the database (no WAL, so no disk flush per increment; a
crash empties them, which only forgets the last minute's counts); on SQLite, a side file
beside the database, `<database>-limits`, with `synchronous = OFF`, so a flush never waits
for the signatures' write lock nor holds it.

- `limit_counts (key, slot, n, span)`: hits per HMAC of a key (`domain.ratelimit`) per slot
  start, with the seconds its limiter's window spans, so that each count goes once it has left
  its own window (a 65 s limit's counts do not wait for the aggregate limit's five minutes).
- `limit_keys (period, secret)`: the random key of each 10-minute period that keys them.

`LimitStore.sync`, run every `FLUSH_EVERY` by the `limits` job of every process, adds each
limiter's pending hits in one batch (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`)
and reads back the totals of the keys it sent, of those near their limit and of those it sent
in the last 5 s (`SharedLimiter.to_read`), makes sure the keys of this period and the
next exist (the first worker to ask makes one; the others read it), and every `PURGE_EVERY`
deletes slots that left their window and keys whose period left every window, the counts made
under a key going with it. Memory forgets the same (`forget`) at the same pace, and goes on
forgetting while the store does not answer.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from server.domain.ratelimit import ROTATE, Keyring, Limits
from server.store.engine import Engine, Transaction, describe

logger = logging.getLogger("petition_widget.limits")

READ_BACK = 100  # keys read back per statement (padded, so that there is one statement)
PURGE_EVERY = 5.0  # seconds between deletions of what left every window
WARN_EVERY = 60.0  # seconds between warnings that the limit store does not answer

TABLES = [
    "CREATE {unlogged} TABLE IF NOT EXISTS limit_counts ("
    " key {blob} NOT NULL, slot BIGINT NOT NULL, n INTEGER NOT NULL, span INTEGER NOT NULL,"
    " PRIMARY KEY (key, slot))",
    "CREATE {unlogged} TABLE IF NOT EXISTS limit_keys ("
    " period BIGINT PRIMARY KEY, secret {blob} NOT NULL)",
]
_ADD = (
    "INSERT INTO limit_counts (key, slot, n, span) VALUES (:key, :slot, :n, :span) "
    "ON CONFLICT (key, slot) DO UPDATE SET n = limit_counts.n + excluded.n"
)
_READ = (
    "SELECT key, slot, n FROM limit_counts WHERE slot >= :oldest AND key IN ("  # noqa: S608
    + ", ".join(f":k{i}" for i in range(READ_BACK))
    + ")"
)
_NEW_KEY = (
    "INSERT INTO limit_keys (period, secret) VALUES (:period, :secret) ON CONFLICT DO NOTHING"
)
_KEYS = "SELECT period, secret FROM limit_keys WHERE period >= :oldest"


class LimitStore:
    def __init__(self, engine: Engine, limits: Limits) -> None:
        self.engine = engine
        self.limits = limits
        self._purged_at = 0.0
        self._forgot_at = 0.0
        self._warned_at = 0.0

    async def run(self) -> None:
        """The `limits` job's step: a failure is logged (by kind) and the next step tries again
        with the hits given back, instead of the runner's backoff stopping every flush."""
        try:
            await self.sync()
        except Exception as exc:
            now = self.limits.clock()
            if now - self._forgot_at >= PURGE_EVERY:
                # Memory lets go on time even while the store is down: what a process holds
                # is at most the current window (docs/privacy.md), not all since it went down.
                self.forget(now)
            if now - self._warned_at > WARN_EVERY:
                self._warned_at = now
                logger.warning("the limit store did not answer (%s): limits are per process "
                               "until it does", describe(exc))  # fmt: skip

    async def sync(self) -> None:
        """One flush: keys, then hits, then (now and then) the purge."""
        now = self.limits.clock()
        keyring = self.limits.keyring
        period = Keyring.period(now)
        if keyring.missing([period, period + 1]):  # at start-up, and once a period
            async with self.engine.limits() as tx:
                keyring.shared(await _keys(tx, [period, period + 1], oldest=period - 1))
        await self.flush(now)
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            await self.purge(now)
            self.forget(now)

    async def flush(self, now: float) -> None:
        taken = [(limiter, limiter.take_pending()) for limiter in self.limits]
        rows = [
            {"key": digest, "slot": start, "n": n, "span": limiter.span}
            for limiter, pending in taken
            for digest, slots in pending.items()
            for start, n in slots.items()
        ]
        if not rows and not any(limiter.to_read(pending) for limiter, pending in taken):
            return
        try:
            async with self.engine.limits() as tx:
                if rows:
                    await tx.execute_many(_ADD, rows)
                for limiter, pending in taken:
                    digests = limiter.to_read(pending)
                    if digests:
                        limiter.learn(await _read_back(tx, digests, now - limiter.span))
        except BaseException:
            for limiter, pending in taken:
                limiter.give_back(pending)
            raise

    async def purge(self, now: float) -> None:
        """Delete the slots that left their limiter's window, and the keys of periods that left
        every window (a previous period's key stays while a window still reaches into it)."""
        async with self.engine.limits() as tx:
            await tx.execute("DELETE FROM limit_counts WHERE slot + span < :now", {"now": int(now)})
            keep_from = self._keep_from(now)
            await tx.execute("DELETE FROM limit_keys WHERE period < :p", {"p": keep_from})

    def forget(self, now: float) -> None:
        """Forget in memory what the purge deletes from the store: hits, pending ones included,
        whose slots left their window, keys left without any, and the keys of periods that left
        every window."""
        self._forgot_at = now
        for limiter in self.limits:
            limiter.forget_old()
        self.limits.keyring.forget_before(self._keep_from(now))

    def _keep_from(self, now: float) -> int:
        """The oldest period whose key is still needed (a previous period's key stays while a
        window still reaches into it)."""
        period = Keyring.period(now)
        return period if now - period * ROTATE >= self.limits.span else period - 1


async def _keys(tx: Transaction, periods: Sequence[int], oldest: int) -> dict[int, bytes]:
    for period in periods:
        await tx.execute(_NEW_KEY, {"period": period, "secret": secrets.token_bytes(32)})
    return {int(p): bytes(s) for p, s in await tx.fetch_all(_KEYS, {"oldest": oldest})}


async def _read_back(
    tx: Transaction, digests: list[bytes], oldest: float
) -> list[tuple[bytes, int, int]]:
    found: list[tuple[bytes, int, int]] = []
    for i in range(0, len(digests), READ_BACK):
        chunk = digests[i : i + READ_BACK]
        values: dict[str, Any] = {f"k{j}": chunk[min(j, len(chunk) - 1)] for j in range(READ_BACK)}
        values["oldest"] = int(oldest)
        found.extend((bytes(k), int(s), int(n)) for k, s, n in await tx.fetch_all(_READ, values))
    return found
