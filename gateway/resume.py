"""Resume: read a user's events after a cursor from the topic's history, for many at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from gateway.frames import Cursor
from gateway.metrics import EVENTS_INVALID, REPLAYED, RESUMES
from gateway.pump import standalone_consumer
from hubcore.kafka import Topics, close_consumer
from hubcore.ratelimit import RateLimiter
from hubcore.settings import Settings
from schemas.frames import Event, InvalidEvent, decode_event

log = structlog.get_logger("gateway.resume")

UNAVAILABLE = "resume_unavailable"
INVALID = "invalid_cursor"
SCAN_FACTOR = 100  # records of a partition a resume may read per event it may send
_STALL_LIMIT = 10.0  # seconds without a record before a replay gives up


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    """The events to send (in order), or why none can be: an error code and message."""

    events: list[Event]
    error: tuple[str, str] | None = None


@dataclass(eq=False)
class _Request:
    key: bytes
    cursor: Cursor
    live_from: int  # records from here on reach the connection live
    future: asyncio.Future[ResumeOutcome]
    events: list[Event] = field(default_factory=list)
    verified: bool = False  # the record at the cursor was seen and is the user's

    def __post_init__(self) -> None:
        self.verified = not self.cursor.anchored  # a position names no record to check

    @property
    def stop(self) -> int:
        # Read at least the cursor's own record, to check it is the user's.
        if not self.cursor.anchored:
            return self.live_from
        return max(self.live_from, self.cursor.offset + 1)

    @property
    def start(self) -> int:
        """The first offset to read."""
        return self.cursor.offset if self.cursor.anchored else self.cursor.offset + 1

    def fail(self, code: str, message: str) -> None:
        if not self.future.done():
            self.events.clear()
            self.future.set_result(ResumeOutcome([], (code, message)))
            RESUMES.labels(code).inc()


class ResumeService:
    """Serves resume requests in rounds with one consumer per gateway process.

    Each round reads, per partition, from the smallest requested cursor up to the largest
    live position once, and gives every request the records of its own user in
    (cursor, live_from). The record at the cursor must be the user's own, so a foreign
    cursor yields `invalid_cursor` and nothing else. Nothing is handed over before the
    whole range was read, so a failed request has sent nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = Topics.from_settings(settings).user_events
        self._max_events = settings.ws_resume_max_events
        # Other users' records are read too: bound the scan, not only what is sent.
        self._max_scan = settings.ws_resume_max_events * SCAN_FACTOR
        self._scan_budget = RateLimiter(settings.ws_resume_scan_per_user)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._consumer: AIOKafkaConsumer | None = None
        self._worker: asyncio.Task[None] | None = None

    async def replay(self, key: bytes, cursor: Cursor, live_from: int) -> ResumeOutcome:
        """The user's events after `cursor` and before `live_from`, or the reason why not."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="gateway-resume")
        request = _Request(key, cursor, live_from, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def close(self) -> None:
        """Stop the worker and the consumer; pending requests end as unavailable."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            self._queue.get_nowait().fail(UNAVAILABLE, "the gateway is shutting down")
        await self._drop_consumer()

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._serve(batch)
            except (KafkaError, OSError) as exc:
                log.warning("resume_failed", error=str(exc), requests=len(batch))
                await self._drop_consumer()
            except Exception:
                log.exception("resume_failed", requests=len(batch))
                await self._drop_consumer()
            finally:
                for request in batch:
                    request.fail(UNAVAILABLE, "the event history could not be read; reload")

    async def _serve(self, batch: list[_Request]) -> None:
        consumer = await self._ensure_consumer()
        by_partition: dict[int, list[_Request]] = {}
        for request in batch:  # the session checked the partition is one the pump reads
            by_partition.setdefault(request.cursor.partition, []).append(request)
        tps = [TopicPartition(self._topic, p) for p in by_partition]
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        stops: dict[TopicPartition, int] = {}
        for tp in tps:
            requests = by_partition[tp.partition]
            for request in requests:
                if request.start < first[tp]:
                    request.fail(UNAVAILABLE, "cursor is older than the event retention; reload")
                elif request.start >= end[tp] + (not request.cursor.anchored):
                    request.fail(INVALID, "cursor names no event")
                elif request.live_from - request.cursor.offset > self._max_scan:
                    request.fail(UNAVAILABLE, "too many events since the cursor; reload")
                elif request.stop <= request.start:
                    self._finish(request)  # a position at the live one: nothing was missed
                elif self._scan_budget.acquire(
                    request.key.decode(errors="replace"), request.stop - request.start
                ):
                    # Every resume in a round waits for the longest scan: one user
                    # resuming from old cursors again and again would slow them all.
                    request.fail(UNAVAILABLE, "this user's resumes read too much history lately")
            alive = [r for r in requests if not r.future.done()]
            by_partition[tp.partition] = alive
            if alive:
                stops[tp] = max(r.stop for r in alive)
        if not stops:
            return
        consumer.assign(list(stops))
        consumer.resume(*stops)  # partitions paused by an earlier round
        for tp in stops:
            consumer.seek(tp, min(r.start for r in by_partition[tp.partition]))
        await self._read(consumer, stops, by_partition)
        for requests in by_partition.values():
            for request in requests:
                self._finish(request)

    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        stops: dict[TopicPartition, int],
        by_partition: dict[int, list[_Request]],
    ) -> None:
        remaining = dict(stops)
        last_progress = time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress >= _STALL_LIMIT:
                # A broker outage mid-read: what was read is not the whole history, and
                # handing it over as a resume would skip the rest for good.
                for tp in remaining:
                    for request in by_partition[tp.partition]:
                        request.fail(UNAVAILABLE, "the event history could not be read; reload")
                return
            for tp, records in batch.items():
                stop = remaining.get(tp)
                if stop is None:
                    continue
                self._route(tp.partition, records, stop, by_partition[tp.partition])
                if records[-1].offset + 1 >= stop or await consumer.position(tp) >= stop:
                    del remaining[tp]
                    consumer.pause(tp)

    def _route(
        self,
        partition: int,
        records: list[ConsumerRecord[bytes, bytes]],
        stop: int,
        requests: list[_Request],
    ) -> None:
        at_cursor: dict[int, list[_Request]] = {}
        by_key: dict[bytes, list[_Request]] = {}
        for request in requests:
            if request.cursor.anchored:
                at_cursor.setdefault(request.cursor.offset, []).append(request)
            by_key.setdefault(request.key, []).append(request)
        for record in records:
            offset = record.offset
            if offset >= stop:
                break
            for request in at_cursor.get(offset, ()):
                if record.key == request.key:
                    request.verified = True
                else:
                    request.fail(INVALID, "cursor does not belong to this user")
            for request in by_key.get(record.key, ()):
                if request.future.done() or offset <= request.cursor.offset:
                    continue
                if offset >= request.live_from:
                    continue
                if request.events and offset <= request.events[-1].offset:
                    continue  # read again after a fetch position reset
                if not request.verified:
                    request.fail(UNAVAILABLE, "the event at the cursor is gone; reload")
                    continue
                try:
                    event = decode_event(partition, offset, request.key, record.value)
                except InvalidEvent:
                    EVENTS_INVALID.inc()
                    continue
                request.events.append(event)
                if len(request.events) > self._max_events:
                    request.fail(UNAVAILABLE, "too many events to replay; reload")

    def _finish(self, request: _Request) -> None:
        if request.future.done():
            return
        if not request.verified:
            request.fail(UNAVAILABLE, "the event at the cursor could not be read; reload")
            return
        request.future.set_result(ResumeOutcome(request.events))
        RESUMES.labels("ok").inc()
        REPLAYED.inc(len(request.events))

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = standalone_consumer(self._settings, offset_reset="earliest")
            try:
                await consumer.start()
            except BaseException:
                await close_consumer(consumer)
                raise
            self._consumer = consumer
        return self._consumer

    async def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await close_consumer(consumer)
