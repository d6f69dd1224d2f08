"""The shared store of rate limits: what makes every worker's and host's limits one.

Three scratch tables, made by each engine's adapter where they cost least (`Engine.limits`):
on PostgreSQL, UNLOGGED tables in the database (no WAL, so no disk flush per increment; a
crash empties them, which only forgets the last minute's counts); on SQLite, a side file
beside the database, `<database>-limits`, with `synchronous = OFF`, so a flush never waits
for the signatures' write lock nor holds it.

- `limit_counts (key, slot, n, span)`: hits per HMAC of a key (`domain.ratelimit`) per slot
  start, with the seconds its limiter's window spans, so that each count goes once it has left
  its own window (a 65 s limit's counts do not wait for the aggregate limit's five minutes).
- `limit_keys (period, secret)`: the random key of each 10-minute period that keys them.
- `limit_hot (name, key, at)`: the keys a worker found at half their limit or more, announced
  so that every other worker reads them back too, even one that has not served that client
  (`SharedLimiter.adopt`); each flush reads those announced in the last `ANNOUNCED_FOR` s.

`LimitStore.sync`, run every `FLUSH_EVERY` by the `limits` job of every process, adds each
limiter's pending hits in one batch (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`)
and reads back the totals of the keys it sent, of those near their limit and of those it sent
in the last 5 s (`SharedLimiter.to_read`), announces the keys that became hot here and adopts
those other workers announced, makes sure the keys of this period and the
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

from server.domain.ratelimit import MAX_HOT, ROTATE, Keyring, Limits
from server.store.engine import Engine, Transaction, describe

logger = logging.getLogger("petition_widget.limits")

READ_BACK = 100  # keys read back per statement (padded, so that there is one statement)
PURGE_EVERY = 5.0  # seconds between deletions of what left every window
WARN_EVERY = 60.0  # seconds between warnings that the limit store does not answer
# Seconds an announcement of a hot key is read by every flush: many flushes, and room for
# hosts' clocks a few seconds apart (each host writes `at` by its own).
ANNOUNCED_FOR = 5

TABLES = [
    "CREATE {unlogged} TABLE IF NOT EXISTS limit_counts ("
    " key {blob} NOT NULL, slot BIGINT NOT NULL, n INTEGER NOT NULL, span INTEGER NOT NULL,"
    " PRIMARY KEY (key, slot))",
    "CREATE {unlogged} TABLE IF NOT EXISTS limit_keys ("
    " period BIGINT PRIMARY KEY, secret {blob} NOT NULL)",
    "CREATE {unlogged} TABLE IF NOT EXISTS limit_hot ("
    " name TEXT NOT NULL, key {blob} NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (name, key))",
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
_ANNOUNCE = (
    "INSERT INTO limit_hot (name, key, at) VALUES (:name, :key, :at) "
    "ON CONFLICT (name, key) DO UPDATE SET at = excluded.at"
)
_ANNOUNCED = "SELECT name, key FROM limit_hot WHERE at >= :since ORDER BY at DESC LIMIT :most"


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
        """Add this worker's hits, read back what it holds of hot and recent keys, announce
        the keys that became hot here, and adopt those that others announced. Every flush
        reads the announcements, idle or not: a worker that serves nobody still learns of the
        clients that hit their limits elsewhere, before the kernel hands it one of them."""
        limiters = {limiter.name: limiter for limiter in self.limits}
        if not limiters:
            return
        taken = []
        for limiter in limiters.values():
            pending = limiter.take_pending()
            taken.append((limiter, pending, limiter.take_announced(pending)))
        rows = [
            {"key": digest, "slot": start, "n": n, "span": limiter.span}
            for limiter, pending, _ in taken
            for digest, slots in pending.items()
            for start, n in slots.items()
        ]
        announce = [
            {"name": limiter.name, "key": digest, "at": int(now)}
            for limiter, _, announced in taken
            for digest in announced
        ]
        try:
            async with self.engine.limits() as tx:
                if rows:
                    await tx.execute_many(_ADD, rows)
                if announce:
                    await tx.execute_many(_ANNOUNCE, announce)
                for limiter, pending, _ in taken:
                    digests = limiter.to_read(pending)
                    if digests:
                        limiter.learn(await _read_back(tx, digests, now - limiter.span))
                heard: dict[str, list[bytes]] = {}
                since = {"since": int(now) - ANNOUNCED_FOR, "most": MAX_HOT}
                for name, key in await tx.fetch_all(_ANNOUNCED, since):
                    heard.setdefault(str(name), []).append(bytes(key))
                for name, keys in heard.items():
                    found = limiters.get(name)
                    new = found.adopt_from(keys) if found is not None else []
                    if found is not None and new:
                        found.adopt(await _read_back(tx, new, now - found.span))
        except BaseException:
            for limiter, pending, announced in taken:
                limiter.give_back(pending, announced)
            raise

    async def purge(self, now: float) -> None:
        """Delete the slots that left their limiter's window, and the keys of periods that left
        every window (a previous period's key stays while a window still reaches into it)."""
        async with self.engine.limits() as tx:
            await tx.execute("DELETE FROM limit_counts WHERE slot + span < :now", {"now": int(now)})
            await tx.execute(
                "DELETE FROM limit_hot WHERE at < :old", {"old": int(now) - ANNOUNCED_FOR}
            )
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
