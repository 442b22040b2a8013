"""Running a batch until it succeeds: retry passing failures, isolate records that never will."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka.errors import KafkaError, KafkaTimeoutError
from pymongo.errors import ConnectionFailure, PyMongoError, WaitQueueTimeoutError

from hubcore.errors import HubError
from streams import metrics
from streams.errors import PoisonRecord
from streams.processor import BatchOutcome, BatchProcessor
from streams.records import Poison, SourceRecord

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


def _merge(into: BatchOutcome, part: BatchOutcome) -> None:
    into.records += part.records
    into.raws += part.raws
    into.commands += part.commands
    into.stored += part.stored
    into.read += part.read
    into.users += part.users
    into.dead_letters.extend(part.dead_letters)
    for kind, n in part.events.items():
        into.events[kind] = into.events.get(kind, 0) + n


class BatchRunner:
    """Processes a batch to completion; only cancellation stops it half-way.

    A failure that passes (store or broker away) is retried with backoff, for as long as
    it lasts: the records stay unacknowledged meanwhile, so nothing is lost. Any other
    failure is narrowed down record by record, and a record that fails on its own goes
    to the dead-letter topic with the reason, so its partition keeps flowing.
    """

    def __init__(self, processor: BatchProcessor, *, max_backoff: float = 5.0) -> None:
        self.processor = processor
        self.max_backoff = max_backoff

    async def run(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Process `records`; return what was done."""
        try:
            return await self._retrying(records)
        except Exception as exc:
            log.warning("batch failed, isolating records", error=repr(exc), records=len(records))
            if len(records) == 1:
                return await self._dead_letter(records[0], exc)
        outcome = BatchOutcome()
        for record in records:
            try:
                part = await self._retrying([record])
            except Exception as exc:
                part = await self._dead_letter(record, exc)
            _merge(outcome, part)
        return outcome

    async def _retrying(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        delay = 0.2
        while True:
            try:
                return await self.processor.process(records)
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                metrics.BATCH_RETRIES.inc()
                log.warning("batch retry", error=repr(exc), records=len(records), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def _dead_letter(self, record: SourceRecord, exc: Exception) -> BatchOutcome:
        poison = Poison(
            record,
            PoisonRecord(f"processing failed: {exc!r}"[:2000], error_type="processing_error"),
        )
        sink = self.processor.sink
        delay = 0.2
        while True:
            try:
                await sink.send(
                    self.processor.topics.dead_letter,
                    record.key,
                    poison.dead_letter().to_json(),
                    poison.headers(),
                )
                await sink.flush()
                return BatchOutcome(records=1, dead_letters=[poison])
            except Exception as send_exc:
                if not is_retriable(send_exc):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
