"""Running a batch until it succeeds: failures are retried with backoff, never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka.errors import KafkaError, KafkaTimeoutError
from pymongo.errors import ConnectionFailure, PyMongoError, WaitQueueTimeoutError

from hubcore.errors import HubError
from streams import metrics
from streams.processor import BatchOutcome, BatchProcessor
from streams.records import SourceRecord

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

    Bad input never gets here as an exception: decoding turns it into dead letters. What
    fails here is the store or the broker (retried with backoff for as long as it lasts)
    or a bug. A bug is retried too, loudly, rather than dead-lettering the batch: its
    effects may be half applied (messages stored, not yet counted), and only finishing
    the same records later keeps the counts equal to the store. The records stay
    unacknowledged meanwhile, so nothing is lost.
    """

    def __init__(self, processor: BatchProcessor, *, max_backoff: float = 5.0) -> None:
        self.processor = processor
        self.max_backoff = max_backoff

    async def run(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Process `records`; return what was done."""
        delay = 0.2
        while True:
            try:
                return await self.processor.process(records)
            except Exception as exc:
                metrics.BATCH_RETRIES.inc()
                if is_retriable(exc):
                    log.warning("batch retry", error=repr(exc), records=len(records), delay=delay)
                else:
                    log.error(
                        "batch failed; retrying",
                        error=repr(exc),
                        records=len(records),
                        first=records[0].origin if records else None,
                        delay=delay,
                        exc_info=True,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
