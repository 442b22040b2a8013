"""The store's writers take turns: a batch's store phase first, the projection sink between.

Both write to one database. FerretDB's SQLite backend lets one writer in at a time per
database file, and a writer that finds it locked retries after sleeps of 1 to 100 ms
(SQLite's busy handler), so a batch's message insert that collided with the projection
sink's updates (one commit per document) waited tens, at 200 msg/s hundreds, of ms on the
critical path. Here a store phase waits only for the sink's write in flight (a small
chunk), and the sink starts a chunk only while no store phase runs or waits, or once it
has waited `patience` (so it cannot starve under a steady load).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class WriteGate:
    """Orders store phases (critical path) before projection chunks (background)."""

    def __init__(self, patience: float = 0.1) -> None:
        self.patience = patience
        self.started = 0  # store phases ever started
        self.last_start = 0.0  # monotonic time the last one started
        self._stores = 0  # store phases running or waiting
        self._stores_idle = asyncio.Event()
        self._stores_idle.set()
        self._sink_idle = asyncio.Event()
        self._sink_idle.set()

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[None]:
        """A store phase: from now on no new projection chunk starts; the one in flight
        is waited for."""
        self.started += 1
        self.last_start = time.monotonic()
        self._stores += 1
        self._stores_idle.clear()
        try:
            await self._sink_idle.wait()
            yield
        finally:
            self._stores -= 1
            if self._stores == 0:
                self._stores_idle.set()

    @contextlib.asynccontextmanager
    async def sink(self) -> AsyncIterator[None]:
        """A projection chunk: starts when no store phase runs, or after `patience`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stores_idle.wait(), self.patience)
        self._sink_idle.clear()
        try:
            yield
        finally:
            self._sink_idle.set()


class NoGate(WriteGate):
    """No ordering: one writer only (`hub replay`, tests of the batch logic)."""

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[None]:
        """Go ahead."""
        yield

    @contextlib.asynccontextmanager
    async def sink(self) -> AsyncIterator[None]:
        """Go ahead."""
        yield
