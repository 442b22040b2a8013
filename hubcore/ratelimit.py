"""In-process token buckets: `<count>/<s|min|h>` per key (user, IP, account).

One bucket per key holds up to `count` tokens and refills at `count` per period, so a
client may burst the whole allowance and then continue at the average rate. Each
process limits on its own: with N gateway processes a user gets up to N times the rate,
which keeps the check a dict lookup instead of a round trip to a shared store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_PERIODS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def parse_rate(spec: str) -> tuple[float, float]:
    """`"30/min"` -> (capacity 30, 0.5 tokens per second)."""
    count, _, unit = spec.partition("/")
    capacity = float(count)
    if capacity < 1 or unit not in _PERIODS:
        raise ValueError(f"a rate is <count>/<s|min|h> with count >= 1, not {spec!r}")
    return capacity, capacity / _PERIODS[unit]


def retry_after(seconds: float) -> str:
    """The `Retry-After` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class RateLimiter:
    """`acquire(key)` is 0.0 when allowed, else the seconds until a token is there."""

    def __init__(
        self,
        spec: str,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.capacity, self.rate = parse_rate(spec)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """`cost` tokens (a resume's records read, say): more than the capacity never."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= cost:
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they are the same as absent ones). If every
        key is still active, drop the half with the most tokens left, the newest first
        among equals: a flood of new keys must not free a key it has exhausted (issue 22)."""
        active = {}
        for key, (tokens, at) in self._buckets.items():
            refilled = tokens + (now - at) * self.rate
            if refilled < self.capacity:
                active[key] = (tokens, at, refilled)
        if len(active) >= self.max_keys:
            newest_first = list(active.items())[::-1]
            fullest = sorted(newest_first, key=lambda item: item[1][2], reverse=True)
            active = dict(fullest[len(fullest) // 2 :])
        self._buckets = {k: (t, at) for k, (t, at, _) in active.items()}
