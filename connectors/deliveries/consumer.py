"""Consumes `hub.user-events` (a group of its own) and schedules one delivery per event and
subscribed endpoint: written to `webhook_deliveries` before the offsets are committed, so
a crash re-reads what was not yet scheduled, and the deterministic delivery id makes the
re-read harmless. Sending is the `Dispatcher`'s: the consumer never waits on an endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from connectors.deliveries.dispatcher import Dispatcher
from connectors.errors import OUTAGES
from connectors.publisher import Publisher
from hubcore.kafka import BATCH_MIN_BYTES, Session, Topics, consume_forever, create_consumer
from hubcore.mongo import BULK_CHUNK, Document, bulk_write_chunked
from hubcore.settings import Settings
from hubcore.webhooks import WebhookStore, pending_doc
from schemas import DeadLetterSource
from schemas.frames import Event, InvalidEvent, decode_event

log = structlog.get_logger("connectors.deliveries")

# Events are taken in batches of up to this long: the broker holds each fetch until it
# has BATCH_MIN_BYTES or the wait is over. Every batch costs a fetch, a read of the
# endpoints and a commit (~2 ms of CPU together): taken per fetch as it came (one or two
# events at 100 msg/s) they were a quarter of the process's CPU per webhook; now at most
# 5 a second at any rate, idle included. A delivery waits up to this much longer (W1's
# target is a p99 of 1 s).
FETCH_MAX_WAIT_MS = 200


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.webhook-deliveries"


class _Owned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps the dispatcher's set of owned partitions in step with the group."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.dispatcher.partitions -= {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.dispatcher.take_over({tp.partition for tp in assigned})


class DeliveryConsumer:
    """Runs until stopped; survives Kafka and store outages by retrying."""

    def __init__(
        self, settings: Settings, store: WebhookStore, dispatcher: Dispatcher, publisher: Publisher
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.publisher = publisher
        self.topic = Topics.from_settings(settings).user_events
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.dispatcher.start()
        self._task = asyncio.create_task(self._run(), name="webhook-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.dispatcher.stop()

    async def _run(self) -> None:
        await consume_forever(
            "webhook consumer",
            self._session,
            outages=OUTAGES,
            ready=self.publisher.wait_ready,
        )

    def _session(self) -> Session:
        consumer = create_consumer(
            self.settings,
            group_id=group_id(self.settings),
            # A new group reads what the topic keeps; an endpoint only gets events
            # appended after it was created (earlier ones: replay).
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_min_bytes=BATCH_MIN_BYTES,
        )
        consumer.subscribe([self.topic], listener=_Owned(self.dispatcher))
        return consumer, functools.partial(self._consume, consumer)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                if batch:
                    await self._schedule([r for records in batch.values() for r in records])
                    await consumer.commit(
                        {tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batch.items()}
                    )
        finally:
            self.dispatcher.partitions.clear()

    async def _schedule(self, records: list[ConsumerRecord]) -> None:
        """Write the deliveries of these records (in order), then wake their workers."""
        # Endpoints first, by the records' keys: most users have none, and their events are
        # then neither decoded nor framed here (this process also takes platform webhooks).
        users = {(record.key or b"").decode(errors="replace") for record in records}
        hooks = await self.store.for_users(users)
        if not hooks:
            return
        events: list[tuple[str, int, Event]] = []
        for record in records:
            key = record.key or b""
            user = key.decode(errors="replace")
            if user not in hooks:
                continue
            try:
                event = decode_event(record.partition, record.offset, key, record.value or b"")
            except InvalidEvent as exc:
                await self._poison(record, str(exc))
                continue
            events.append((user, record.timestamp, event))
        docs: dict[str, list[Document]] = {}
        for user, appended_ms, event in events:
            for webhook in hooks.get(user, []):
                if event.type in webhook.events and appended_ms >= _ms(webhook.created_at):
                    docs.setdefault(webhook.id, []).append(pending_doc(self.topic, webhook, event))
        if not docs:
            return
        flat = [doc for per_webhook in docs.values() for doc in per_webhook]
        try:
            # Ordered: a reader never sees an event's delivery before an earlier one's.
            for start in range(0, len(flat), BULK_CHUNK):
                await self.store.deliveries.insert_many(flat[start : start + BULK_CHUNK])
        except BulkWriteError:
            # Records read again after a crash: some deliveries exist, maybe sent already.
            ops = [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in flat]
            await bulk_write_chunked(self.store.deliveries, ops)
            self.dispatcher.reload(docs)
            return
        for webhook_id, added in docs.items():
            self.dispatcher.add(webhook_id, added)

    async def _poison(self, record: ConsumerRecord, reason: str) -> None:
        await self.publisher.dead_letter(
            reason=f"webhook deliveries: {reason}",
            error_type="invalid_event",
            platform="webhook",
            account_id=(record.key or b"").decode(errors="replace"),
            payload=record.value or b"",
            source=DeadLetterSource(
                topic=record.topic, partition=record.partition, offset=record.offset
            ),
        )


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def start_deliveries(
    settings: Settings,
    db: AsyncDatabase[Document],
    publisher: Publisher,
    stack: contextlib.AsyncExitStack,
) -> Callable[[], Awaitable[None]]:
    """Webhook deliveries (docs/webhooks.md): their own HTTP client, so a slow endpoint
    never holds a connection a platform call needs; returns their stop."""
    store = WebhookStore(db, settings)
    with contextlib.suppress(PyMongoError):  # the gateway creates them too
        await store.ensure_indexes()
    http = await stack.enter_async_context(
        httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))
    )
    deliveries = DeliveryConsumer(
        settings, store, Dispatcher(settings, store, http, publisher), publisher
    )
    deliveries.start()
    return deliveries.stop
