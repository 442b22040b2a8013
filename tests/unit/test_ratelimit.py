"""Token buckets: burst, refill, per key, bounded memory."""

from __future__ import annotations

import pytest

from hubcore.ratelimit import RateLimiter, parse_rate, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter("3/min", clock=clock)
    assert [limiter.acquire("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("alice")
    assert wait == pytest.approx(20.0)  # one token per 20 s
    assert retry_after(wait) == "20"
    assert limiter.acquire("bob") == 0.0  # another key is not affected
    clock.now += 20.0
    assert limiter.acquire("alice") == 0.0
    assert limiter.acquire("alice") > 0


def test_rates_parse_and_refuse_nonsense() -> None:
    assert parse_rate("30/min") == (30.0, 0.5)
    assert parse_rate("2/s") == (2.0, 2.0)
    assert retry_after(0.01) == "1"
    for bad in ("0/s", "5/day", "x/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter("1/s", max_keys=100, clock=clock)
    for n in range(1000):
        limiter.acquire(f"ip{n}")
        clock.now += 0.001
    assert len(limiter._buckets) <= 100


def test_a_flood_of_new_keys_frees_no_limited_one() -> None:
    """100,000 distinct keys (spoofed forwarded addresses, an IPv6 range) emptied every
    bucket once the table was full: the flooder's own limit was lifted (issue 22)."""
    clock = Clock()
    limiter = RateLimiter("120/min", max_keys=100, clock=clock)  # HUB_RATE_WS_PER_IP
    assert all(limiter.acquire("flooder") == 0.0 for _ in range(120))
    assert limiter.acquire("flooder") > 0
    for n in range(1000):
        limiter.acquire(f"spoofed-{n}")
        clock.now += 0.0001  # 0.1 s in all: 0.2 tokens refilled
        assert len(limiter._buckets) <= 100
    assert limiter.acquire("flooder") > 0  # still limited, not a fresh bucket of 120


def test_a_cost_takes_that_many_tokens_and_more_than_the_capacity_never_passes() -> None:
    clock = Clock()
    limiter = RateLimiter("100/min", clock=clock)
    assert limiter.acquire("alice", 60) == 0.0
    assert limiter.acquire("alice", 60) == pytest.approx(12.0)  # 20 short at 100 per 60 s
    assert limiter.acquire("alice", 40) == 0.0  # a smaller one still fits
    assert limiter.acquire("bob", 101) > 0  # never, however long bob waits
    clock.now += 3600
    assert limiter.acquire("bob", 101) > 0
