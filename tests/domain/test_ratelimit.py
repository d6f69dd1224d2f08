"""The shared limiter, alone: windows, waits, keys, and what a flush hands over and learns."""

from __future__ import annotations

from server.domain.ratelimit import ROTATE, SLOT, SLOTS, Limits, SharedLimiter


class Clock:
    def __init__(self, now: float = 1_000_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(per_minute: int, clock: Clock, **options: int) -> SharedLimiter:
    return Limits(clock).limiter("test", per_minute, **options)


def test_a_minute_at_once_then_refused() -> None:
    clock = Clock()
    lim = limiter(60, clock)
    assert [lim.hit("a") for _ in range(60)] == [0] * 60
    assert lim.hit("a") > 0


def test_no_60_second_window_holds_more_than_the_limit() -> None:
    """A client that tries every 0.5 s for ten minutes: every 60 s window is at the limit at
    most, and it gets at least 90 % of the rate."""
    clock = Clock()
    lim = limiter(10, clock)
    allowed: list[float] = []
    for _ in range(1_200):
        if lim.hit("a") == 0:
            allowed.append(clock.now)
        clock.now += 0.5
    for i, t in enumerate(allowed):
        assert sum(1 for u in allowed[i:] if u < t + 60) <= 10
    assert len(allowed) >= 0.9 * 10 * 10


def test_retry_after_is_honest() -> None:
    clock = Clock()
    lim = limiter(3, clock)
    assert [lim.hit("a") for _ in range(3)] == [0, 0, 0]
    wait = lim.hit("a")
    assert 60 <= wait <= SLOT * SLOTS
    clock.now += wait - 1
    assert lim.hit("a") > 0
    clock.now += 1
    assert lim.hit("a") == 0


def test_keys_are_independent_and_so_are_limiters() -> None:
    clock = Clock()
    limits = Limits(clock)
    one, two = limits.limiter("one", 1), limits.limiter("two", 1)
    assert one.hit(("a", 1)) == 0
    assert one.hit(("a", 1)) > 0
    assert one.hit(("a", 2)) == 0
    assert one.hit("b") == 0
    assert two.hit(("a", 1)) == 0


def test_zero_disables() -> None:
    lim = limiter(0, Clock())
    assert all(lim.hit("a") == 0 for _ in range(10_000))
    assert lim.take_pending() == {}


def test_wait_counts_nothing_and_count_always_counts() -> None:
    clock = Clock()
    lim = limiter(2, clock, slot=1, slots=60)
    assert lim.wait("a") == 0
    lim.count("a")
    lim.count("a")
    wait = lim.wait("a")
    assert 0 < wait <= 60  # a client refused for failures is refused for at most a minute
    clock.now += wait
    assert lim.wait("a") == 0


def test_the_limit_holds_across_a_key_rotation() -> None:
    clock = Clock(ROTATE * 1_000_000 - 10.0)  # ten seconds before a new key
    lim = limiter(5, clock)
    assert [lim.hit("a") for _ in range(5)] == [0] * 5
    clock.now += 20  # the key has changed; the hits made under the last one still count
    assert lim.hit("a") > 0


def test_memory_holds_hmacs_only_and_lets_go() -> None:
    clock = Clock()
    lim = limiter(10, clock)
    lim.hit("203.0.113.5")
    pending = lim.take_pending()
    (digest,) = pending
    assert b"203.0.113.5" not in digest and len(digest) == 16
    assert lim.held() == 1
    clock.now += SLOT * SLOTS
    lim.forget_old()
    assert lim.held() == 0  # its bucket is full again: nothing is kept


def test_learning_the_shared_totals() -> None:
    """What other workers counted, read back by a flush, counts here as well."""
    clock = Clock()
    lim = limiter(5, clock)
    assert lim.hit("a") == 0
    pending = lim.take_pending()
    (digest,) = pending
    (start,) = pending[digest]
    lim.hit("a")  # after the hand-over: not in the store's total yet
    lim.learn([(digest, start, 4)])  # 1 of ours + 3 of other workers
    assert lim.hit("a") > 0  # 4 + 1 since: the limit


def test_a_failed_flush_gives_the_hits_back() -> None:
    lim = limiter(5, Clock())
    lim.hit("a")
    pending = lim.take_pending()
    lim.hit("a")
    lim.give_back(pending)
    (slots,) = lim.take_pending().values()
    assert sum(slots.values()) == 2


def test_a_key_is_announced_once_when_it_turns_hot() -> None:
    """Half the limit announces the key, for every other worker to read it back."""
    lim = limiter(10, Clock())
    for _ in range(3):
        lim.hit("a")
    assert lim.take_announced() == []  # 3 of 10: not hot yet
    lim.hit("a")
    lim.hit("a")
    (announced,) = lim.take_announced()
    assert (announced,) == tuple(lim.take_pending())
    lim.hit("a")
    assert lim.take_announced() == []  # once


def test_adopting_what_another_worker_announced() -> None:
    clock = Clock()
    a, b = Limits(clock), Limits(clock)
    for limits in (a, b):  # the store's key of this period (its window lies in one period)
        limits.keyring.shared({int(clock.now // ROTATE): b"k" * 32})
    lim_a, lim_b = a.limiter("sign", 4), b.limiter("sign", 4)
    for _ in range(4):
        lim_a.hit("x")
    (digest,) = lim_a.take_announced()
    (slots,) = lim_a.take_pending().values()
    assert lim_b.adopt_from([digest, digest]) == [digest]
    lim_b.adopt([(digest, start, n) for start, n in slots.items()])
    assert lim_b.hit("x") > 0  # B never served "x"
    assert lim_b.adopt_from([digest]) == []  # read back by every flush from now on
    assert lim_b.take_announced() == []  # not announced again from here
