"""Consumes `hub.outbound` (its own group) and hands each reply to `Delivery`.

Partitions run side by side, each in order (one account's replies in one partition keep
their order). Offsets are committed after the results are acknowledged on hub.commands:
a crash re-reads the batch, and the ledger makes re-reading harmless.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from connectors.errors import ConnectorError
from connectors.outbound.delivery import Delivery
from connectors.publisher import Publisher
from hubcore.kafka import Topics
from hubcore.settings import Settings
from schemas import DeadLetterSource, OutboundMessage

log = structlog.get_logger("connectors.outbound")

_MAX_BACKOFF = 10.0


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.connectors-outbound"


class OutboundConsumer:
    """Runs until stopped; survives Kafka and store outages by retrying."""

    def __init__(self, settings: Settings, delivery: Delivery, publisher: Publisher) -> None:
        self.settings = settings
        self.delivery = delivery
        self.publisher = publisher
        self.topic = Topics.from_settings(settings).outbound
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbound-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=group_id(self.settings),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await self.publisher.wait_ready()
                await consumer.start()
                backoff = 0.5
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=100)
                    if batch:
                        offsets = await asyncio.gather(
                            *(self._partition(tp, records) for tp, records in batch.items())
                        )
                        await consumer.commit(dict(offsets))
            except (KafkaError, ConnectorError, PyMongoError, OSError) as exc:
                log.warning("outbound consumer failed", error=str(exc), retry_in=backoff)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _partition(
        self, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> tuple[TopicPartition, OffsetAndMetadata]:
        for record in records:
            await self._one(record)
        return tp, OffsetAndMetadata(records[-1].offset + 1, "")

    async def _one(self, record: ConsumerRecord) -> None:
        value = record.value or b""
        try:
            msg = OutboundMessage.from_json(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            await self.publisher.dead_letter(
                reason=f"{where}: {first.get('msg', 'invalid')}",
                error_type="validation_error",
                platform="",
                account_id=(record.key or b"").decode(errors="replace"),
                payload=value,
                source=DeadLetterSource(
                    topic=record.topic, partition=record.partition, offset=record.offset
                ),
            )
            return
        result = await self.delivery.deliver(msg)
        await self.publisher.commands([result])
