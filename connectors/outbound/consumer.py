"""Consumes `hub.outbound` (its own group) and hands each reply to `Delivery`.

Partitions run side by side, each in order (one account's replies in one partition keep
their order). Offsets are committed after the results are acknowledged on hub.commands:
a crash re-reads the batch, and the ledger makes re-reading harmless.

Stopping lets a platform call under way finish (up to `HUB_SEND_TIMEOUT`), so a restart
does not turn it into an ambiguous one; a reply waiting out a backoff stops waiting and
is taken up again by the next process (its ledger says nothing was delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from connectors.errors import OUTAGES, ConnectorError
from connectors.outbound.delivery import Delivery
from connectors.publisher import Publisher
from hubcore.kafka import Session, Topics, consume_forever, create_consumer
from hubcore.settings import Settings
from schemas import OutboundMessage

log = structlog.get_logger("connectors.outbound")

# The broker holds an idle fetch this long. The hub's 20 ms (hubcore.kafka) keeps busy
# partitions from waiting behind idle ones, but costs 50 empty fetches a second when
# nothing is sent: a fifth of the connectors' CPU per webhook at 100 msg/s (README,
# Performance). A reply may wait up to this much longer; a platform call takes more.
FETCH_MAX_WAIT_MS = 250


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.connectors-outbound"


class Stopping(Exception):
    """Raised out of a backoff wait when the consumer stops."""


class OutboundConsumer:
    """Runs until stopped; survives Kafka and store outages by retrying."""

    def __init__(self, settings: Settings, delivery: Delivery, publisher: Publisher) -> None:
        self.settings = settings
        self.delivery = delivery
        self.publisher = publisher
        self.topic = Topics.from_settings(settings).outbound
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._busy = 0  # replies being handled now
        # The backoff between platform calls ends early when the process stops.
        delivery.sleep = self._sleep

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise Stopping

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbound-consumer")

    async def stop(self) -> None:
        """Finish the call under way (bounded), then stop."""
        self._stopping.set()
        if self._task is None:
            return
        if self._busy:
            grace = self.settings.send_timeout + self.settings.kafka_request_timeout + 1
            with contextlib.suppress(TimeoutError, Stopping):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Stopping):
            await self._task

    async def _run(self) -> None:
        await consume_forever(
            "outbound consumer",
            self._session,
            outages=OUTAGES,
            ready=self.publisher.wait_ready,
            stopping=self._stopping,
        )

    def _session(self) -> Session:
        consumer = create_consumer(
            self.settings,
            self.topic,
            group_id=group_id(self.settings),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        return consumer, functools.partial(self._consume, consumer)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=100)
            if batch:
                done = await asyncio.gather(
                    *(self._partition(tp, records) for tp, records in batch.items())
                )
                offsets = {tp: offset for tp, offset in done if offset is not None}
                if offsets:
                    await consumer.commit(offsets)

    async def _partition(
        self, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> tuple[TopicPartition, OffsetAndMetadata | None]:
        """Process in order until done or stopping; the offset after the last one done."""
        done: int | None = None
        for record in records:
            if self._stopping.is_set():
                break
            self._busy += 1
            try:
                await self._one(record)
            except Stopping:
                break
            finally:
                self._busy -= 1
            done = record.offset
        return tp, None if done is None else OffsetAndMetadata(done + 1, "")

    async def _one(self, record: ConsumerRecord) -> None:
        value = record.value or b""
        try:
            msg = OutboundMessage.from_json(value)
        except ValidationError as exc:
            await self.publisher.dead_letter_invalid(record, exc)
            return
        try:
            result = await self.delivery.deliver(msg)
        except (Stopping, KafkaError, ConnectorError, PyMongoError, OSError):
            raise  # an outage: the batch is read again once it is over
        except Exception as exc:
            # One record must never end the task: that would stall its partition for good.
            log.exception("reply crashed", message_id=msg.message_id)
            result = await self.delivery.give_up(msg, exc)
        await self.publisher.commands([result])
