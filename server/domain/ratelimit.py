"""Rate limits that hold across workers and hosts, checked in memory.

A limit is `per_minute` hits per key over any 60 s. Time is cut into slots (`SLOT`, 5 s); a
hit is allowed while the hits counted in the last `SLOTS` (13) slots, the current one
included, stay below the limit. A hit therefore counts for 60 to 65 s, so no 60 s window ever
holds more than `per_minute` of them, and a client that keeps trying gets at least 60/65 (92 %)
of its rate. The whole minute may come as one burst.

Every check is a dictionary lookup in this process: nothing waits for the database. Each
worker counts its own hits as pending, and a job (`server.store.limits`, every
`FLUSH_EVERY`) adds them to the shared store and reads back the totals of the keys it sent,
which every worker and host has added to. A key that reaches half its limit is announced
(`take_announced`) so that every other worker reads it back too (`adopt`), whether or not it
has served that client yet: a worker the kernel hands a client's next connection to already
knows of its earlier hits. So a worker knows every other's hits on a key as of its last
flush, and a burst that reaches several workers at once may pass the limit by at most what
each admits within about one flush.

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
MAX_HOT = 2_000  # keys a flush reads back without having hits of its own to add on them
RECHECK = 5.0  # seconds a worker keeps reading back a key it flushed
# Seconds between announcements of a key that stays hot and keeps being hit: well within the
# store's `ANNOUNCED_FOR`, so a worker that starts (or comes back) while a client keeps at it
# adopts its key too, not only the workers that were there when it turned hot.
REANNOUNCE = 2.0
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
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, tuple):
        return b"\x1f".join([encode(part) for part in key])
    if isinstance(key, bytes):
        return key
    return b"%d" % key


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
        self._pending: dict[tuple[bytes, int], int] = {}  # (HMAC, slot start) -> hits
        self._window_of = -1
        self._window_was = (0, range(0))
        # Keys at half their limit or more: read back by every flush, hit or not, so that a
        # worker does not admit on what it knew before another worker's hits.
        self._hot: set[bytes] = set()
        # Keys this worker flushed in the last `RECHECK` seconds -> until when: read back too,
        # for the hits other workers flushed just after this one did.
        self._recent: dict[bytes, float] = {}
        # Keys that became hot here, for the next flush to announce to every other worker.
        self._announce: set[bytes] = set()
        self._announced_at: dict[bytes, float] = {}

    @property
    def span(self) -> int:
        """Seconds the window reaches back at most (a hit counts this long at most)."""
        return self.slot * self.slots

    def hit(self, key: Key) -> int:
        """Count one hit; 0 if it is allowed, else the seconds to wait (and nothing counted)."""
        if not self.per_minute:
            return 0
        now = self._clock()
        start = int(now // self.slot) * self.slot
        wait, current = self._check(key, start, now)
        if not wait:
            self._add(current, start)
        return wait

    def wait(self, key: Key) -> int:
        """The seconds to wait before `key` may be counted again; 0 if it may be now."""
        if not self.per_minute:
            return 0
        now = self._clock()
        return self._check(key, int(now // self.slot) * self.slot, now, counting=0)[0]

    def count(self, key: Key) -> None:
        """Count one hit whatever the limit says (a failure that has happened); a key it
        brings to half its limit is hot and announced, as with `hit`."""
        if self.per_minute:
            now = self._clock()
            start = int(now // self.slot) * self.slot
            self._add(self._check(key, start, now)[1], start)

    def _window(self, start: int) -> tuple[int, range]:
        """The window of the slot beginning at `start`: its oldest slot's start, and the
        periods whose keys it needs (two for a minute after a rotation). Made once a slot."""
        if start != self._window_of:
            first = start - self.slot * (self.slots - 1)
            self._window_was = (first, range(Keyring.period(first), Keyring.period(start) + 1))
            self._window_of = start
        return self._window_was

    def _check(self, key: Key, start: int, now: float, counting: int = 1) -> tuple[int, bytes]:
        """(0 or the seconds to wait, the key's HMAC under the current period's key): the hot
        path, a few microseconds."""
        first, periods = self._window(start)
        message = self._prefix + encode(key)
        secret = self._keyring.secret
        held = self._held
        total = 0
        digests = []
        for period in periods:
            digest = hmac.digest(secret(period), message, "sha256")[:KEY_BYTES]
            digests.append(digest)
            slots = held.get(digest)
            if slots:
                for slot, n in slots.items():
                    if slot >= first:
                        total += n
        limit = self.per_minute
        if 2 * (total + counting) >= limit:  # a mere `wait` heats no key it holds nothing of
            self._heat(digests)
        if total < limit:
            return 0, digest
        # Wait until enough of the oldest slots have left the window.
        counted = sorted(
            (slot, n) for d in digests for slot, n in held.get(d, {}).items() if slot >= first
        )
        for slot, n in counted:
            total -= n
            if total < limit:
                return max(1, math.ceil(slot + self.span - now)), digest
        return max(1, math.ceil(self.span - now % self.slot)), digest  # unreachable: limit > 0

    def _heat(self, digests: Iterable[bytes]) -> None:
        hot = self._hot
        for digest in digests:
            if digest not in hot:
                hot.add(digest)
                self._announce.add(digest)

    def _slots(self, digest: bytes) -> dict[int, int]:
        """The slots held for `digest`, made (room made first) if there are none yet."""
        held = self._held
        slots = held.get(digest)
        if slots is None:
            if len(held) >= self._max_keys:
                held.pop(next(iter(held)))  # the longest held goes first
            slots = held[digest] = {}
        return slots

    def _add(self, digest: bytes, start: int) -> None:
        slots = self._slots(digest)
        slots[start] = slots.get(start, 0) + 1
        pending = self._pending
        pending[digest, start] = pending.get((digest, start), 0) + 1

    # --- What the shared store's job uses -------------------------------------------------

    def take_pending(self) -> dict[bytes, dict[int, int]]:
        """This worker's hits since the last flush, handed over (and forgotten here)."""
        pending, self._pending = self._pending, {}
        taken: dict[bytes, dict[int, int]] = {}
        for (digest, start), n in pending.items():
            taken.setdefault(digest, {})[start] = n
        until = self._clock() + RECHECK
        for digest in taken:
            self._recent[digest] = until
        return taken

    def to_read(self, pending: dict[bytes, dict[int, int]]) -> list[bytes]:
        """The keys whose shared totals a flush reads back: those it sent, and (at most
        `MAX_HOT` more) those near their limit and those it sent in the last `RECHECK` s."""
        now = self._clock()
        for digest in [d for d, until in self._recent.items() if until < now]:
            del self._recent[digest]
        held = self._held
        more = [d for d in self._hot if d not in pending and d in held]
        more += [d for d in self._recent if d not in pending and d not in self._hot and d in held]
        return [*pending, *more[:MAX_HOT]]

    def take_announced(self, pending: Iterable[bytes] = ()) -> list[bytes]:
        """The keys to announce: those that became hot here since the last flush, and those
        of `pending` (the keys this flush sends) that are hot and were last announced
        `REANNOUNCE` s ago or more. Forgotten here; a failed flush gives them back."""
        now = self._clock()
        announce, self._announce = self._announce, set()
        hot, at = self._hot, self._announced_at
        for digest in pending:
            if digest in hot and now - at.get(digest, float("-inf")) >= REANNOUNCE:
                announce.add(digest)
        for digest in announce:
            at[digest] = now
        return list(announce)

    def adopt_from(self, announced: Iterable[bytes]) -> list[bytes]:
        """Of keys other workers announced, those this one does not read back yet (at most
        `MAX_HOT`): the flush reads their totals for `adopt`."""
        if not self.per_minute:
            return []
        hot = self._hot
        return [d for d in dict.fromkeys(announced) if d not in hot][:MAX_HOT]

    def adopt(self, totals: Iterable[tuple[bytes, int, int]]) -> None:
        """The shared totals of keys other workers announced: held from now on, and read back
        by every flush while they stay in the window, as if this worker had hit them itself
        (but not announced again from here)."""
        oldest = int(self._clock() // self.slot) * self.slot - self.slot * (self.slots - 1)
        fresh = [(d, start, n) for d, start, n in totals if start >= oldest]
        for digest, _, _ in fresh:
            self._slots(digest)
            self._hot.add(digest)
        self.learn(fresh)

    def give_back(
        self, pending: dict[bytes, dict[int, int]], announced: Iterable[bytes] = ()
    ) -> None:
        """Hits (and announcements) a failed flush could not send: they go with the next."""
        mine = self._pending
        for digest, slots in pending.items():
            for start, n in slots.items():
                mine[digest, start] = mine.get((digest, start), 0) + n
        self._announce.update(d for d in announced if d in self._held)

    def learn(self, totals: Iterable[tuple[bytes, int, int]]) -> None:
        """The shared totals (HMAC, slot start, hits) read back by a flush: what every worker
        counted, plus what this one counted since it handed its hits over."""
        for digest, start, n in totals:
            slots = self._held.get(digest)
            if slots is None:
                continue
            since = self._pending.get((digest, start), 0)
            slots[start] = max(slots.get(start, 0), n + since)
            if 2 * sum(slots.values()) >= self.per_minute:
                self._heat([digest])

    def forget_old(self) -> None:
        """Drop every slot that has left the window, and keys left with none: an entry lives
        only while its bucket is not full again. Hits not flushed yet go too once they have
        left it (the store would purge them at once): while the store does not answer, they
        would otherwise pile up, given back by every failed flush."""
        oldest = int(self._clock() // self.slot) * self.slot - self.slot * (self.slots - 1)
        for digest in list(self._held):
            slots = self._held[digest]
            for start in [s for s in slots if s < oldest]:
                del slots[start]
            if not slots:
                del self._held[digest]
        self._hot &= self._held.keys()
        self._announce &= self._held.keys()
        for digest in [d for d in self._announced_at if d not in self._held]:
            del self._announced_at[digest]
        for old in [k for k in self._pending if k[1] < oldest]:
            del self._pending[old]

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
