"""Rate limits that hold across workers and hosts, checked in memory.

A limit is `per_minute` hits per key over any 60 s. Time is cut into slots (`SLOT`, 5 s); a
hit is allowed while the hits counted in the last `SLOTS` (13) slots, the current one
included, stay below the limit. A hit therefore counts for 60 to 65 s, so no 60 s window ever
holds more than `per_minute` of them, and a client that keeps trying gets at least 60/65 (92 %)
of its rate. The whole minute may come as one burst.

Every check is a dictionary lookup in this process: nothing waits for the database. Each
worker counts its own hits as pending, and a job (`server.store.limits`, every
`FLUSH_EVERY`) adds them to the shared store and reads back the totals of the keys it sent,
which every worker and host has added to. So a worker knows every other's hits on a key as of
its last flush, and a burst that reaches several workers at once may pass the limit by at most
what each admits within one flush.

Keys are never addresses. The caller names what it limits in plain, canonical text (an IPv4
address, an IPv6 /64, optionally with a petition id); `hit` keys it with an HMAC under the
`Keyring`'s key of the current 10-minute period (`ROTATE`), a random key that lives in the
shared store with the counts made under it, never derived from `SECRET_KEYS`, and deleted with
them once its period has left every window. Memory and store hold only those HMACs, and an
entry is dropped as soon as none of its slots is in the window (its bucket is full again), so
a copy of either tells at most who hit a limit in the last few minutes, and only to someone who
guesses addresses against a key that is gone ten minutes later.

Using a limiter: `limits.limiter(name, per_minute)` once at start-up (each name one limit),
then `hit(key)` per request, which counts the hit and returns 0, or returns the seconds to wait
and counts nothing; `wait(key)` and `count(key)` split the two, for limits on failures (the
dashboard's sign-in). `per_minute=0` disables a limiter.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable, Iterable, Iterator

SLOT = 5  # seconds: the store's counting unit
SLOTS = 13  # slots a hit counts in (60 to 65 s)
ROTATE = 600  # seconds a key of client keys is used for
FLUSH_EVERY = 0.25  # seconds between a worker's flushes to the shared store (the job's period)
MAX_KEYS = 200_000  # keys held per limiter at most (a flood from that many addresses a minute)
MAX_HOT = 2_000  # keys near their limit that a flush reads back without having hit them
KEY_BYTES = 16  # of an HMAC: collisions stay out of reach, and rows stay small

Key = str | bytes | int | tuple["Key", ...]


class Keyring:
    """The keys of client keys, one per `ROTATE` period, as the shared store holds them.

    A period whose key has not arrived from the store (at start-up, or while the store cannot
    be reached) gets a random key of this process alone: its limits are then per process until
    the store answers, never unkeyed."""

    def __init__(self) -> None:
        self._keys: dict[int, bytes] = {}
        self._local: set[int] = set()

    @staticmethod
    def period(now: float) -> int:
        return int(now // ROTATE)

    def secret(self, period: int) -> bytes:
        found = self._keys.get(period)
        if found is None:
            found = self._keys[period] = secrets.token_bytes(32)
            self._local.add(period)
        return found

    def shared(self, keys: dict[int, bytes]) -> None:
        """Take the store's keys (a local stand-in is replaced)."""
        for period, key in keys.items():
            if period in self._local or period not in self._keys:
                self._keys[period] = key
                self._local.discard(period)

    def missing(self, periods: Iterable[int]) -> list[int]:
        """The periods among `periods` that have no shared key here yet."""
        return [p for p in periods if p not in self._keys or p in self._local]

    def forget_before(self, period: int) -> None:
        for old in [p for p in self._keys if p < period]:
            del self._keys[old]
            self._local.discard(old)

    def periods(self) -> list[int]:
        return sorted(self._keys)


def encode(key: Key) -> bytes:
    """A key as bytes, one encoding per value (a tuple's parts apart)."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, int):
        return b"%d" % key
    return b"\x1f".join(encode(part) for part in key)


class SharedLimiter:
    """One limit: per key, the hits of each slot in the window as this worker knows them (the
    shared total at its last flush, plus its own since), and its own hits not flushed yet."""

    def __init__(
        self,
        name: str,
        per_minute: int,
        keyring: Keyring,
        *,
        slot: int = SLOT,
        slots: int = SLOTS,
        clock: Callable[[], float] = time.time,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.name = name
        self.per_minute = per_minute
        self.slot = slot
        self.slots = slots
        self._prefix = name.encode() + b"\0"
        self._keyring = keyring
        self._clock = clock
        self._max_keys = max_keys
        self._held: dict[bytes, dict[int, int]] = {}  # HMAC -> slot start -> hits
        self._pending: dict[bytes, dict[int, int]] = {}
        # Keys at half their limit or more: read back by every flush, hit or not, so that a
        # worker does not admit on what it knew before another worker's hits.
        self._hot: set[bytes] = set()

    @property
    def span(self) -> int:
        """Seconds the window reaches back at most (a hit counts this long at most)."""
        return self.slot * self.slots

    def hit(self, key: Key) -> int:
        """Count one hit; 0 if it is allowed, else the seconds to wait (and nothing counted)."""
        if not self.per_minute:
            return 0
        now = self._clock()
        wait, current = self._check(key, now)
        if not wait:
            self._add(current, int(now // self.slot) * self.slot)
        return wait

    def wait(self, key: Key) -> int:
        """The seconds to wait before `key` may be counted again; 0 if it may be now."""
        if not self.per_minute:
            return 0
        return self._check(key, self._clock())[0]

    def count(self, key: Key) -> None:
        """Count one hit whatever the limit says (a failure that has happened)."""
        if self.per_minute:
            now = self._clock()
            self._add(self._hashes(key, now)[-1][0], int(now // self.slot) * self.slot)

    def _hashes(self, key: Key, now: float) -> list[tuple[bytes, range]]:
        """The key's HMAC under each period's key that the window reaches into, with the slot
        starts of the window in that period (two periods for a minute after a rotation)."""
        size = self.slot
        current = int(now // size) * size
        first = current - size * (self.slots - 1)
        message = self._prefix + encode(key)
        found = []
        start = first
        while start <= current:
            period = Keyring.period(start)
            end = min(current + size, (period + 1) * ROTATE)
            secret = self._keyring.secret(period)
            digest = hmac.digest(secret, message, "sha256")[:KEY_BYTES]
            found.append((digest, range(start, end, size)))
            start = end
        return found

    def _check(self, key: Key, now: float) -> tuple[int, bytes]:
        hashes = self._hashes(key, now)
        counted: list[tuple[int, int]] = []  # (slot start, hits), oldest first
        for digest, starts in hashes:
            slots = self._held.get(digest)
            if slots:
                counted.extend((s, slots[s]) for s in starts if s in slots)
        total = sum(n for _, n in counted)
        current = hashes[-1][0]
        if 2 * (total + 1) >= self.per_minute:
            self._hot.update(digest for digest, _ in hashes)
        if total < self.per_minute:
            return 0, current
        # Wait until enough of the oldest slots have left the window.
        for start, n in counted:
            total -= n
            if total < self.per_minute:
                leaves = start + self.span
                return max(1, math.ceil(leaves - now)), current
        return max(1, math.ceil(self.span - now % self.slot)), current  # per_minute <= 0

    def _add(self, digest: bytes, start: int) -> None:
        slots = self._held.get(digest)
        if slots is None:
            if len(self._held) >= self._max_keys:
                self._held.pop(next(iter(self._held)))  # the longest held goes first
            slots = self._held[digest] = {}
        slots[start] = slots.get(start, 0) + 1
        pending = self._pending.setdefault(digest, {})
        pending[start] = pending.get(start, 0) + 1

    # --- What the shared store's job uses -------------------------------------------------

    def take_pending(self) -> dict[bytes, dict[int, int]]:
        """This worker's hits since the last flush, handed over (and forgotten here)."""
        pending, self._pending = self._pending, {}
        return pending

    def to_read(self, pending: dict[bytes, dict[int, int]]) -> list[bytes]:
        """The keys whose shared totals a flush reads back: those it sent, and the hot ones
        (at most `MAX_HOT` of them)."""
        hot = [digest for digest in self._hot if digest not in pending and digest in self._held]
        return [*pending, *hot[:MAX_HOT]]

    def give_back(self, pending: dict[bytes, dict[int, int]]) -> None:
        """Hits a failed flush could not add: they go with the next one."""
        for digest, slots in pending.items():
            mine = self._pending.setdefault(digest, {})
            for start, n in slots.items():
                mine[start] = mine.get(start, 0) + n

    def learn(self, totals: Iterable[tuple[bytes, int, int]]) -> None:
        """The shared totals (HMAC, slot start, hits) read back by a flush: what every worker
        counted, plus what this one counted since it handed its hits over."""
        for digest, start, n in totals:
            slots = self._held.get(digest)
            if slots is None:
                continue
            since = self._pending.get(digest, {}).get(start, 0)
            slots[start] = max(slots.get(start, 0), n + since)

    def forget_old(self) -> None:
        """Drop every slot that has left the window, and keys left with none: an entry lives
        only while its bucket is not full again."""
        oldest = int(self._clock() // self.slot) * self.slot - self.slot * (self.slots - 1)
        for digest in list(self._held):
            slots = self._held[digest]
            for start in [s for s in slots if s < oldest]:
                del slots[start]
            if not slots:
                del self._held[digest]
        self._hot &= self._held.keys()

    def held(self) -> int:
        """Keys held in memory (for tests and the docs' figures)."""
        return len(self._held)


class Limits:
    """Every limiter of a process, with the keyring they share: what the flush job syncs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.keyring = Keyring()
        self.clock = clock
        self._limiters: dict[str, SharedLimiter] = {}

    def limiter(
        self, name: str, per_minute: int, *, slot: int = SLOT, slots: int = SLOTS
    ) -> SharedLimiter:
        if name in self._limiters:
            raise ValueError(f"a limiter named {name!r} exists already")
        found = SharedLimiter(
            name, per_minute, self.keyring, slot=slot, slots=slots, clock=self.clock
        )
        self._limiters[name] = found
        return found

    def __iter__(self) -> Iterator[SharedLimiter]:
        return iter(self._limiters.values())

    @property
    def span(self) -> int:
        """The longest window of any limiter, in seconds."""
        return max((lim.span for lim in self), default=SLOT * SLOTS)
