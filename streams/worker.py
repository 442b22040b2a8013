"""The Faust app factory: topics, the unread table, the batch agent, startup and /metrics."""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from faust.streams import Stream, _current_event
from faust.tables.table import Table
from faust.types import StreamT
from faust.types.transports import TransportT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import ASCENDING, AsyncMongoClient

from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.logging import configure_logging
from hubcore.mongo import MESSAGES, Document, create_client, database, ensure_indexes
from hubcore.settings import Settings
from streams import metrics
from streams.consumer import StreamsTransport
from streams.processor import BatchOutcome, BatchProcessor
from streams.records import SourceRecord
from streams.recovery import StreamsTableManager
from streams.retry import BatchRunner
from streams.sinks import KafkaSink
from streams.state import UnreadState
from streams.topology import check_copartitioned

log = structlog.get_logger("streams")

TABLE_NAME = "unread"


def app_id(settings: Settings) -> str:
    """The Faust app id = consumer group, and the prefix of the changelog topic."""
    return f"{settings.topic_namespace}.streams"


def changelog_topic(settings: Settings) -> str:
    """The compacted topic the unread table is kept in."""
    return f"{app_id(settings)}-{TABLE_NAME}-changelog"


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`: the source
    records', the changelog's and the table store's partition of a user."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class UnreadTable(Table[bytes, Any]):
    """A Faust table that hands out the futures of its changelog writes.

    Faust acknowledges source offsets after `producer.flush()`, and its buffer flush gives
    up after 0.1 s without progress, so a commit may overtake a changelog write. The agent
    awaits these futures before acknowledging, which closes that window.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[asyncio.Future[Any]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        """Send as Faust does, remembering the future."""
        fut = super().send_changelog(*args, **kwargs)
        self._pending.append(fut)
        return fut

    async def wait_changelog(self) -> None:
        """Return when every changelog write so far is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


@dataclass(frozen=True, slots=True)
class _PartitionMessage:
    partition: int


class _PartitionEvent:
    """Stands in for the current event: all Faust's RocksDB store reads of it."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _PartitionMessage(partition)


class TableStateStore:
    """`StateStore` over the Faust table, keyed by the user id's bytes (= the source key)."""

    def __init__(self, table: UnreadTable, partitions: int, *, file_by_event: bool) -> None:
        self.table = table
        self.partitions = partitions
        self.file_by_event = file_by_event

    def get(self, user_id: str) -> UnreadState:
        """The user's state from the table."""
        return UnreadState.from_value(self.table.get(user_id.encode()))

    def put(self, user_id: str, state: UnreadState) -> None:
        """Write the state; Faust sends it to the changelog."""
        key = user_id.encode()
        if not self.file_by_event:
            self.table[key] = state.to_value()
            return
        # Faust's RocksDB store files a key under the *current event's* partition (it
        # ignores `use_partitioner`), and a batch spans partitions: make the current
        # event one of the key's own partition, as the changelog partitioner computes it.
        marker = _PartitionEvent(key_partition(key, self.partitions))
        token = _current_event.set(weakref.ref(marker))  # type: ignore[arg-type]
        try:
            self.table[key] = state.to_value()
        finally:
            _current_event.reset(token)

    async def flush(self) -> None:
        """Wait for the changelog."""
        await self.table.wait_changelog()


class StreamsApp(faust.App):
    """Faust app that also owns the store client and the event producer."""

    hub_settings: Settings
    unread_table: UnreadTable
    runner: BatchRunner
    _hub_mongo: AsyncMongoClient[Document] | None = None
    _hub_producer: AIOKafkaProducer | None = None

    def _new_transport(self) -> TransportT:
        """Faust's aiokafka transport, making `StreamsConsumer`s (streams/consumer.py)."""
        return StreamsTransport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        """Create topics and connect to the store before the consumer subscribes."""
        settings = self.hub_settings
        # Faust creates only the last level of its data directory.
        Path(self.conf.datadir).parent.mkdir(parents=True, exist_ok=True)
        # Faust declares its own topics (changelog) with the policy's replication too.
        self.conf.topic_replication_factor = await ensure_topics(settings)
        await super().on_first_start()
        await check_copartitioned(settings, [changelog_topic(settings)])
        self._hub_mongo = create_client(settings.mongo_url)
        db = database(self._hub_mongo, settings)
        await ensure_indexes(db)
        await db[MESSAGES].create_index([("readBy", ASCENDING)])
        self._hub_producer = create_producer(settings)
        await self._hub_producer.start()
        store = TableStateStore(
            self.unread_table,
            settings.topic_partitions,
            file_by_event=settings.streams_store == "rocksdb",
        )
        sink = KafkaSink(self._hub_producer)
        processor = BatchProcessor(db, store, sink, Topics.from_settings(settings))
        self.runner = BatchRunner(processor)

    async def on_shutdown(self) -> None:
        """Close the clients after the agents have stopped."""
        await super().on_shutdown()
        if self._hub_producer is not None:
            await self._hub_producer.stop()
        if self._hub_mongo is not None:
            await self._hub_mongo.close()


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _observe_positions(app: StreamsApp, messages: list[Any]) -> None:
    """Consumer lag per partition and the batch's projection delay, after a batch."""
    if not messages:
        return
    last: dict[Any, int] = {}
    for message in messages:
        last[message.tp] = max(last.get(message.tp, -1), message.offset)
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            lag = max(highwater - offset - 1, 0)
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
    oldest = min(message.timestamp for message in messages)  # seconds, the record's time
    metrics.PROJECTION_DELAY.observe(max(time.time() - oldest, 0.0))


def _log_batch(outcome: BatchOutcome, seconds: float, partitions: list[str]) -> None:
    metrics.BATCH_SIZE.observe(outcome.records)
    metrics.BATCH_SECONDS.observe(seconds)
    for phase, ms in outcome.phases.items():
        metrics.BATCH_PHASE_SECONDS.labels(phase).observe(ms / 1000)
    metrics.RECORDS.labels("raw").inc(outcome.raws)
    metrics.RECORDS.labels("command").inc(outcome.commands)
    metrics.MESSAGES_STORED.inc(outcome.stored)
    metrics.MESSAGES_READ.inc(outcome.read)
    for kind, n in outcome.events.items():
        metrics.EVENTS.labels(kind).inc(n)
    for poison in outcome.dead_letters:
        metrics.DEAD_LETTERS.labels(poison.error.error_type).inc()
        log.warning(
            "dead letter",
            origin=poison.record.origin,
            error_type=poison.error.error_type,
            reason=poison.error.message,
        )
    log.info(
        "batch",
        records=outcome.records,
        raws=outcome.raws,
        commands=outcome.commands,
        stored=outcome.stored,
        read=outcome.read,
        users=outcome.users,
        events=sum(outcome.events.values()),
        dead_letters=len(outcome.dead_letters),
        partitions=partitions,
        ms=round(seconds * 1000, 1),
        phases_ms=outcome.phases,
    )


def create_app(settings: Settings) -> StreamsApp:
    """The streams Faust app for `settings` (ids and topics derive from the namespace)."""
    topics = Topics.from_settings(settings)
    data_dir = Path(settings.data_dir) / f"streams-{settings.topic_namespace}"
    app = StreamsApp(
        app_id(settings),
        broker=_broker_url(settings.kafka_bootstrap),
        store="rocksdb://" if settings.streams_store == "rocksdb" else "memory://",
        datadir=str(data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication or 1,  # set on start
        web_enabled=True,
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.streams_web_port,
        autodiscover=False,
        broker_session_timeout=settings.streams_session_timeout,
        broker_heartbeat_interval=settings.streams_session_timeout / 4,
        # Ends each recovery with the stream partitions sought (to their committed or,
        # without one, first offsets: hence "earliest" stated here) and the buffers
        # cleared before they are resumed; Faust's own order skips records
        # (streams/recovery.py).
        TableManager=StreamsTableManager,
        consumer_auto_offset_reset="earliest",
    )
    app.hub_settings = settings
    table = UnreadTable(
        app,
        name=TABLE_NAME,
        default=None,
        partitions=settings.topic_partitions,
        # The changelog partition comes from the key through the producer's partitioner
        # (murmur2 of the user id's bytes, like the source records), not from whichever
        # event happened to be current when a batch spanning partitions wrote the table.
        use_partitioner=True,
        # bytes keys are sent and recovered raw (= the source key); values are JSON.
        key_type=bytes,
        beacon=app.tables.beacon,
        help="Unread counts and source watermarks per user.",
    )
    app.tables.add(table)
    app.unread_table = table
    source = app.topic(
        topics.raw_messages, topics.commands, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source, name="process")
    async def process(stream: StreamT[bytes]) -> None:
        """Process raw messages and commands in batches; acknowledge only what succeeded."""
        batches = cast(Stream[bytes], stream).take_events(
            settings.streams_batch_size, settings.streams_batch_within
        )
        async for events in batches:
            # Faust acks a `take` batch in a `finally`, even when processing failed or was
            # cancelled; one extra reference per message keeps the offsets uncommitted
            # until the batch is really done.
            for event in events:
                event.message.incref()
            started = time.perf_counter()
            records = [
                SourceRecord(m.topic, m.partition, m.offset, m.key, m.value)
                for m in (event.message for event in events)
            ]
            outcome = await app.runner.run(records)
            partitions = sorted({r.source for r in records})
            _log_batch(outcome, time.perf_counter() - started, partitions)
            _observe_positions(app, [event.message for event in events])
            for event in events:
                event.message.ack(app.consumer)

    @app.page("/metrics")
    async def metrics_page(view: Any, request: Any) -> Any:
        """Prometheus text exposition."""
        # aiohttp refuses a charset in `content_type`; a header carries it unchanged.
        return view.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def run_worker(settings: Settings) -> None:
    """Run one streams worker in this process until a signal stops it."""
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
