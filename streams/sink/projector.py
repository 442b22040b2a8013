"""The projection sink: writes the `conversations` and `unread` documents beside the batch loop.

The batch loop offers each batch's changed documents (absolute state from the table, with
versions) and a callback that acknowledges the batch's source records. While one write is
in flight, later offers fold into the next one, so many changes to a document become one
write, and the store's bulk write carries them in chunks. A store outage is retried with
backoff for as long as it lasts: the records stay unacknowledged, so a crash meanwhile
redelivers them and the redo offers the same documents again. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import BULK_CHUNK, Document
from streams import metrics
from streams.batch.gate import NoGate, WriteGate
from streams.sink.projection import Projections, write_projections

log = structlog.get_logger("streams.projector")

Done = Callable[[], None]
# Documents per write of stored documents: a batch's store phase waits for at most one
# such write in flight (the first of a run of chunks; see MAX_CHUNK); and per write of
# documents this sink has not written yet.
CHUNK = 8
NEW_CHUNK = 200
# The largest chunk of stored documents, reached by doubling once no batch's store phase
# has started for IDLE_TO_GROW seconds (a backlog's last write; not between the batches of
# a steady load, whose store phases would wait for the bigger chunk).
MAX_CHUNK = BULK_CHUNK
IDLE_TO_GROW = 0.05
# Ids of documents written, remembered to skip their lookup (at most this many).
MAX_REMEMBERED = 200_000
# Seconds a write must have taken before the sink rests after it, and the longest rest.
REST_AFTER = 0.05
MAX_REST = 0.2
REST_STEP = 0.02
# Seconds at least from one write's start to the next: at light load every batch would
# otherwise be a write of its own (two store commands per message).
MIN_INTERVAL = 0.05


class ProjectionSink:
    """Coalesces offered projections and writes them, one bulk write at a time."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        gate: WriteGate | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.db = db
        # Each chunk waits while a batch's store phase runs (streams/batch/gate.py).
        self.gate = gate or NoGate()
        self.max_backoff = max_backoff
        self._pending = Projections()
        self._done: list[Done] = []
        self._pending_since: float | None = None
        self._inflight_since: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.retrying_since: float | None = None
        self.written = 0
        self._stored: set[str] = set()
        self._gated = 0.0  # seconds the write in progress waited at the gate
        self._last_start = 0.0  # monotonic time the last write started

    def offer(self, projections: Projections, done: Done) -> None:
        """Queue a batch's documents; `done` runs once they are written."""
        self._pending.merge(projections)
        self._done.append(done)
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._idle.clear()
        self._wake.set()

    def lag(self) -> float:
        """Seconds the oldest unwritten change has waited (0 when caught up)."""
        starts = [t for t in (self._inflight_since, self._pending_since) if t is not None]
        return time.monotonic() - min(starts) if starts else 0.0

    def retrying_for(self) -> float:
        """Seconds the current write has been failing (0 when not)."""
        since = self.retrying_since
        return time.monotonic() - since if since is not None else 0.0

    @property
    def paused(self) -> bool:
        """True while writes are held."""
        return not self._resumed.is_set()

    def pause(self) -> None:
        """Hold writes (tests show events flowing while the store trails)."""
        self._resumed.clear()

    def resume(self) -> None:
        """Let writes go again."""
        self._resumed.set()

    async def drain(self) -> None:
        """Return when everything offered so far is written."""
        await self._idle.wait()

    async def run(self) -> None:
        """Write until cancelled."""
        while True:
            await self._wake.wait()
            await self._resumed.wait()
            if (wait := self._last_start + MIN_INTERVAL - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # what is offered meanwhile joins this write
            self._wake.clear()
            self._last_start = time.monotonic()
            batch, done, self._pending, self._done = self._pending, self._done, Projections(), []
            self._inflight_since, self._pending_since = self._pending_since, None
            began = time.monotonic()
            written = await self._write(batch)
            self.written += written
            metrics.SINK_DOCUMENTS.inc(written)
            if self._inflight_since is not None:
                metrics.SINK_LAG.observe(time.monotonic() - self._inflight_since)
            self._inflight_since = None
            for callback in done:
                callback()
            if self._pending_since is None:
                self._idle.set()
            if (took := time.monotonic() - began) > REST_AFTER:
                await self._rest(min(took, MAX_REST))

    async def _rest(self, seconds: float) -> None:
        """Under load, rest about as long as the write took: the next write folds in the
        changes of twice the time (fewer store commands per message), and the batches'
        store phases meet no projection write meanwhile. The rest ends as soon as no
        batch was stored for a step: then there is nothing to make room for (and a
        throughput run's last projections are not held back)."""
        until = time.monotonic() + seconds
        seen = self.gate.started
        while time.monotonic() < until:
            await asyncio.sleep(REST_STEP)
            if self.gate.started == seen:
                return
            seen = self.gate.started

    async def _write(self, batch: Projections) -> int:
        started = time.perf_counter()
        since = self._inflight_since
        self._gated = 0.0
        written = chunks = 0
        stored, new = batch.split(self._stored)
        # Documents not written by this sink yet: looked up and inserted in big chunks (a
        # backlog of new conversations is a few commands per hundred); then the rewrites
        # of stored ones, in small chunks between the batches' store phases, bigger once
        # they pause (fewer commands, and less of the worker's CPU, per document).
        size = CHUNK
        for part, known in ((new, False), (stored, True)):
            while part:
                chunk = part.take(NEW_CHUNK if not known else size)
                # What was offered since this write began replaces what it would write.
                chunk.refresh(self._pending)
                written += await self._write_chunk(chunk, stored=known)
                chunks += 1
                idle = time.monotonic() - self.gate.last_start >= IDLE_TO_GROW
                size = min(size * 2, MAX_CHUNK) if idle else CHUNK
                if len(self._stored) > MAX_REMEMBERED:
                    self._stored.clear()  # bounded: forgotten ids are looked up again
                self._stored.update(chunk.ids())
        if not batch:  # its documents went out with the write before (`refresh`)
            return written
        log.info(
            "projections",
            documents=len(batch),
            written=written,
            chunks=chunks,
            ms=round((time.perf_counter() - started) * 1000, 1),
            # Of which waiting for the batches' store phases to let the chunks in.
            gate_ms=round(self._gated * 1000, 1),
            # Age of the oldest change written (hub_streams_sink_lag_seconds).
            lag_ms=round((time.monotonic() - since) * 1000, 1) if since is not None else None,
        )
        return written

    async def _write_chunk(self, chunk: Projections, *, stored: bool) -> int:
        delay = 0.2
        while True:
            try:
                asked = time.perf_counter()
                async with self.gate.sink():
                    self._gated += time.perf_counter() - asked
                    written = await write_projections(
                        self.db, chunk.conversations, chunk.unread, stored=stored
                    )
            except Exception as exc:
                if self.retrying_since is None:
                    self.retrying_since = time.monotonic()
                metrics.SINK_RETRIES.inc()
                log.warning("projection write retry", error=repr(exc), documents=len(chunk))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            self.retrying_since = None
            return written
