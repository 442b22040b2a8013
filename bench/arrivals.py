"""Send and arrival times of numbered items, for the open-loop latency load generators."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class Arrivals:
    """Item n is sent at `sent[n]` and arrives at `arrived[n]` (first arrival counts)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent: dict[int, float] = {}
        self.arrived: dict[int, float] = {}
        self._complete = asyncio.Event()

    async def paced(self, rate: float) -> AsyncIterator[int]:
        """Yield 0, 1, ... total-1, item n at n/rate s after the first (open loop: a slow
        receiver never delays the schedule), recording when each is sent."""
        began = time.perf_counter()
        for n in range(self.total):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent[n] = time.perf_counter()
            yield n

    def arrive(self, n: int, at: float) -> None:
        """Record item n's arrival (repeats are ignored)."""
        if n not in self.arrived:
            self.arrived[n] = at
            if len(self.arrived) >= self.total:
                self._complete.set()

    async def drain(self, timeout: float) -> None:
        """Wait until every item arrived, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._complete.wait(), timeout)

    def latencies(self, skip: int = 0) -> list[float]:
        """Seconds from send to arrival of items `skip`.. that were sent and arrived."""
        return [
            self.arrived[n] - self.sent[n]
            for n in range(skip, self.total)
            if n in self.arrived and n in self.sent
        ]
