"""Running a batch until it succeeds: failures are retried with backoff; a record that keeps
failing is isolated by bisection and dead-lettered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog
from aiokafka.errors import KafkaError, KafkaTimeoutError
from pymongo.errors import ConnectionFailure, PyMongoError, WaitQueueTimeoutError

from hubcore.errors import HubError
from streams import metrics
from streams.batch.outcome import BatchOutcome
from streams.batch.processor import BatchProcessor
from streams.batch.records import Poison, SourceRecord
from streams.errors import PoisonRecord

log = structlog.get_logger("streams.retry")


def is_retriable(exc: BaseException) -> bool:
    """True for a store or broker that is away for now; False for a property of the input."""
    if isinstance(exc, HubError):
        return exc.retriable
    if isinstance(exc, ConnectionFailure | WaitQueueTimeoutError | KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, PyMongoError):
        return exc.has_error_label("RetryableWriteError") or bool(getattr(exc, "timeout", False))
    return isinstance(exc, TimeoutError | ConnectionError)


class BatchRunner:
    """Processes a batch to completion; only cancellation stops it half-way.

    Bad input mostly never gets here as an exception: decoding turns it into dead letters.
    What fails here is the store or the broker (retried with backoff for as long as it
    lasts), or a record that makes processing fail for good (a non-retriable error twice
    in a row). Such a batch is bisected until the failing record is alone; that record
    goes to the dead letters with the reason, and the rest proceed, so no partition stalls
    forever. Halves are redone by the same idempotent logic, so what a failed attempt half
    applied is finished, not repeated.
    """

    def __init__(
        self, processor: BatchProcessor, *, max_backoff: float = 5.0, attempts: int = 2
    ) -> None:
        self.processor = processor
        self.max_backoff = max_backoff
        self.attempts = attempts
        self.retrying_since: float | None = None

    def retrying_for(self) -> float:
        """Seconds the current batch has been failing (0 when not)."""
        since = self.retrying_since
        return time.monotonic() - since if since is not None else 0.0

    async def run(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Process `records`; return what was done."""
        try:
            return await self._run(records)
        finally:
            self.retrying_since = None

    async def _run(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        delay = 0.2
        failures = 0
        while True:
            try:
                return await self.processor.process(records)
            except Exception as exc:
                metrics.BATCH_RETRIES.inc()
                if self.retrying_since is None:
                    self.retrying_since = time.monotonic()
                if is_retriable(exc):
                    log.warning("batch retry", error=repr(exc), records=len(records), delay=delay)
                else:
                    failures += 1
                    log.error(
                        "batch failed",
                        error=repr(exc),
                        records=len(records),
                        first=records[0].origin if records else None,
                        exc_info=True,
                    )
                    if failures >= self.attempts:
                        return await self._bisect(records, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def _bisect(self, records: Sequence[SourceRecord], exc: Exception) -> BatchOutcome:
        if len(records) > 1:
            middle = len(records) // 2
            first = await self._run(records[:middle])
            first.merge(await self._run(records[middle:]))
            return first
        error = PoisonRecord(f"processing failed: {exc!r}", error_type="processing_failed")
        poison = Poison(records[0], error)
        delay = 0.2
        while True:
            try:
                await self.processor.dead_letter(poison)
                return BatchOutcome(records=1, dead_letters=[poison])
            except Exception as send_exc:
                log.warning("dead letter retry", error=repr(send_exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
