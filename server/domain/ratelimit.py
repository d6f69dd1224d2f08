"""Rate limits that slow floods down without refusing honest signers behind one address.

One limiter is a GCRA (generic cell rate algorithm): per key it keeps a single number, the
time at which the key's bucket will be full again, so memory stays small and checks are O(1).
Keys are keyed hashes of client addresses (`client_address.client_key`), never addresses. Limits are
per process: with several workers each keeps its own, which only makes them more lenient.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

MAX_KEYS = 200_000  # about 30 MB at worst; the least recently seen keys are forgotten first


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """`per_minute` requests per key, up to `burst` at once (default: a minute's worth).

        `per_minute=0` disables the limiter.
        """
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._tolerance = self._interval * ((burst or per_minute) - 1)
        self._clock = clock
        self._max_keys = max_keys
        self._full_at: OrderedDict[Hashable, float] = OrderedDict()

    def hit(self, key: Hashable) -> int:
        """Count one request; 0 if it is allowed, else the seconds to wait before retrying."""
        if not self.per_minute:
            return 0
        now = self._clock()
        full_at = max(self._full_at.get(key, now), now)
        if full_at - now > self._tolerance:
            return max(1, math.ceil(full_at - now - self._tolerance))
        self._full_at[key] = full_at + self._interval
        self._full_at.move_to_end(key)
        while len(self._full_at) > self._max_keys:
            self._full_at.popitem(last=False)
        return 0
