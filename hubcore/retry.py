"""The one retry helper for calls to the outside: backoff on retriable errors, `Retry-After`
honoured, a non-retriable error raised at once.

An error is retried when its `retriable` attribute is true (`HubError`'s convention);
`retry_after` on the error, when set, replaces the computed wait (capped by `max_delay`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """`attempts` calls at most; waits grow from `first` by `factor` up to `max_delay`."""

    attempts: int = 5
    first: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        try:
            grown = self.first * self.factor ** (failures - 1)
        except OverflowError:  # ~1,000 failures in a row (hours of an outage, forever)
            grown = self.max_delay
        base = min(grown, self.max_delay)
        # Jitter keeps many senders that failed together from coming back together.
        return base * (0.5 + random.random() / 2)  # noqa: S311 - not cryptographic


def retriable(exc: BaseException) -> bool:
    """The error's own verdict; anything that does not say is not retried."""
    return bool(getattr(exc, "retriable", False))


async def retry(
    call: Callable[[int], Awaitable[T]],
    backoff: Backoff,
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call(attempt)` (1-based) until it returns; re-raise a non-retriable error at
    once and the last retriable one after `backoff.attempts` calls."""
    attempt = 1
    while True:
        try:
            return await call(attempt)
        except Exception as exc:
            if not retriable(exc) or attempt >= backoff.attempts:
                raise
            wait = backoff.delay(attempt, getattr(exc, "retry_after", None))
            if on_retry is not None:
                on_retry(exc, wait)
            await sleep(wait)
            attempt += 1
