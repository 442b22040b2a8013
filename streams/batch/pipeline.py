"""Batches in a pipeline: a batch's store writes and table update run while the previous
batch's acks are awaited.

Per batch: prepare (decode, store inserts and read marks, table update), then wait for the
previous batch to be done, then send (changelog, events, dead letters), then await the
acks in the background while the next batch prepares. So a batch's output is sent only
after everything before it is acked: per partition and per user the events keep their
order, and a batch that fails is redone before any later output leaves. Prepares run one
after the other in consumed order, as the store writes of serial batches would. A batch
whose prepare, send or acks fail is redone whole by the `BatchRunner` (retries,
bisection) with nothing else in flight (after the next batch's prepare when its acks
failed, as a redo after a crash comes after later store writes); its effects are
idempotent, so what the failed attempt did is finished, not repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from streams import metrics
from streams.batch.outcome import BatchOutcome
from streams.batch.processor import Prepared
from streams.batch.records import SourceRecord
from streams.batch.retry import BatchRunner

log = structlog.get_logger("streams.pipeline")

Done = Callable[[BatchOutcome], None]


class BatchPipeline:
    """Feeds batches to a `BatchRunner`'s processor, overlapping one batch's acks with the
    next one's preparation; `done` is called per batch, in order, once it is acked."""

    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner
        self.processor = runner.processor
        self._acking: asyncio.Task[tuple[Sequence[SourceRecord], Done] | None] | None = None

    async def submit(self, records: Sequence[SourceRecord], done: Done) -> None:
        """Prepare and send `records`; return while their acks are still awaited."""
        prepared = await self._prepare(records)
        await self.wait()
        if prepared is None:  # failed, or to be cut in two: processed whole, alone
            done(await self.runner.run(records))
            return
        prepared.clock.lap("waited")
        try:
            acks = await self.processor.send(prepared)
        except Exception as exc:
            self._failed("send", records, exc)
            done(await self.runner.run(records))
            return
        self._acking = asyncio.ensure_future(self._settle(records, prepared, acks, done))

    async def wait(self) -> None:
        """Return once the batch whose acks are awaited is done (redone if it failed)."""
        if self._acking is not None:
            acking, self._acking = self._acking, None
            redo = await acking
            if redo is not None:
                records, done = redo
                done(await self.runner.run(records))

    async def close(self) -> None:
        """Stop awaiting: an unfinished batch stays unacknowledged and is redone."""
        if self._acking is not None:
            self._acking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._acking
            self._acking = None

    async def _prepare(self, records: Sequence[SourceRecord]) -> Prepared | None:
        try:
            return await self.processor.prepare(records)
        except Exception as exc:
            self._failed("prepare", records, exc)
            return None

    async def _settle(
        self,
        records: Sequence[SourceRecord],
        prepared: Prepared,
        acks: asyncio.Future[object],
        done: Done,
    ) -> tuple[Sequence[SourceRecord], Done] | None:
        """Await the acks and report the batch done; a failed one is returned to be
        redone by `wait`, after the next batch's prepare, never beside it."""
        try:
            await acks
        except Exception as exc:
            self._failed("acks", records, exc)
            return records, done
        prepared.clock.lap("acks")
        done(prepared.outcome)
        return None

    def _failed(self, step: str, records: Sequence[SourceRecord], exc: Exception) -> None:
        metrics.BATCH_RETRIES.inc()
        log.warning("batch redone", step=step, error=repr(exc), records=len(records))
