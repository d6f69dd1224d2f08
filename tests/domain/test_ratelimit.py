from __future__ import annotations

from server.domain.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.hit("a") for _ in range(60)] == [0] * 60
    assert limiter.hit("a") == 1
    clock.now += 1.0
    assert limiter.hit("a") == 0
    assert limiter.hit("a") >= 1


def test_keys_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst=1, clock=clock)
    assert limiter.hit("a") == 0
    assert limiter.hit("a") > 0
    assert limiter.hit("b") == 0


def test_retry_after_is_honest() -> None:
    clock = Clock()
    limiter = RateLimiter(6, burst=1, clock=clock)  # one every 10 s
    assert limiter.hit("a") == 0
    wait = limiter.hit("a")
    assert wait == 10
    clock.now += wait
    assert limiter.hit("a") == 0


def test_zero_disables() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.hit("a") == 0 for _ in range(10_000))


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=100)
    for i in range(1_000):
        limiter.hit(i)
    assert len(limiter._full_at) == 100


def test_refused_requests_do_not_extend_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(60, burst=1, clock=clock)
    limiter.hit("a")
    for _ in range(100):
        limiter.hit("a")
    clock.now += 1.0
    assert limiter.hit("a") == 0
