"""The Faust app factory: topics, the unread table, the batch agent, startup and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Sequence, Set
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from aiokafka import AIOKafkaProducer
from faust.types import TP, Message, StreamT
from faust.types.transports import TransportT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from hubcore.health import record_health
from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.logging import configure_logging
from hubcore.mongo import MESSAGES, Document, create_client, database, ensure_indexes
from hubcore.settings import Settings
from streams import metrics
from streams.batch.gate import WriteGate
from streams.batch.outcome import BatchOutcome
from streams.batch.pipeline import BatchPipeline
from streams.batch.processor import BatchProcessor
from streams.batch.produce import BatchingKafkaSink
from streams.batch.records import SourceRecord
from streams.batch.retry import BatchRunner
from streams.consumer import SourceBuffer, StreamsTransport
from streams.positions import PartitionPositions
from streams.presence_agent import install_presence
from streams.sink.projector import ProjectionSink
from streams.table.recovery import StreamsTableManager
from streams.table.table import TableStateStore, UnreadTable
from streams.topology import check_copartitioned

log = structlog.get_logger("streams")

TABLE_NAME = "unread"
# Seconds a batch or projection write may keep failing before /health says degraded.
DEGRADED_AFTER = 30.0
# Seconds a stopping worker waits for the projection sink to catch up.
SHUTDOWN_DRAIN = 5.0


def app_id(settings: Settings) -> str:
    """The Faust app id = consumer group, and the prefix of the changelog topic."""
    return f"{settings.topic_namespace}.streams"


def changelog_topic(settings: Settings) -> str:
    """The compacted topic the unread table is kept in."""
    return f"{app_id(settings)}-{TABLE_NAME}-changelog"


class StreamsApp(faust.App):
    """Faust app that also owns the store client and the event producer."""

    hub_settings: Settings
    unread_table: UnreadTable
    source_buffer: SourceBuffer
    runner: BatchRunner
    projector: ProjectionSink
    _projector_task: asyncio.Task[None] | None = None
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
        # No query reads messages by `readBy` since mark-read transitions are found by the
        # commands' message ids (streams/sink/projection.py); every insert paid for it.
        with contextlib.suppress(OperationFailure):
            await db[MESSAGES].drop_index("readBy_1")
        self._hub_producer = create_producer(settings)
        await self._hub_producer.start()
        store = TableStateStore(
            self.unread_table,
            settings.topic_partitions,
            file_by_event=settings.streams_store == "rocksdb",
            producer=self._hub_producer,
            changelog=changelog_topic(settings),
        )
        sink = BatchingKafkaSink(self._hub_producer)
        gate = WriteGate()
        processor = BatchProcessor(db, store, sink, Topics.from_settings(settings), gate=gate)
        self.runner = BatchRunner(processor)
        self.projector = ProjectionSink(db, gate=gate)
        metrics.SINK_LAG_NOW.set_function(self.projector.lag)
        self._projector_task = asyncio.ensure_future(self.projector.run())
        # SIGUSR2 holds, and on the next one resumes, the store's projection writes (store
        # maintenance; tests): events keep flowing, records stay unacknowledged meanwhile.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, self.toggle_sink)

    def toggle_sink(self) -> None:
        """Pause the projection sink, or resume it when paused."""
        if self.projector.paused:
            self.projector.resume()
            log.warning("projection sink resumed")
        else:
            self.projector.pause()
            log.warning("projection sink paused")

    def health(self) -> dict[str, Any]:
        """`/health`: degraded while a batch or a projection write has failed for > 30 s."""
        retrying = max(self.runner.retrying_for(), self.projector.retrying_for())
        lag = self.projector.lag()
        ok = record_health(
            "streams",
            {
                "batches": self.runner.retrying_for() <= DEGRADED_AFTER,
                "projections": self.projector.retrying_for() <= DEGRADED_AFTER,
            },
        )
        return {
            "status": "ok" if ok else "degraded",
            "sinkLagSeconds": round(lag, 3),
            "sinkPaused": self.projector.paused,
            "retryingSeconds": round(retrying, 1),
        }

    async def on_shutdown(self) -> None:
        """Close the clients after the agents have stopped."""
        await super().on_shutdown()
        if self._projector_task is not None:
            # Written projections let their records be acknowledged; the rest is redone.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.projector.drain(), SHUTDOWN_DRAIN)
            self._projector_task.cancel()
        if self._hub_producer is not None:
            await self._hub_producer.stop()
        if self._hub_mongo is not None:
            await self._hub_mongo.close()


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _observe_delay(messages: Sequence[Message]) -> None:
    """The batch's projection delay (the lag per partition is read at the scrape)."""
    if not messages:
        return
    oldest = min(message.timestamp for message in messages)  # seconds, the record's time
    metrics.PROJECTION_DELAY.observe(max(time.time() - oldest, 0.0))


@functools.cache
def _child(metric: MetricWrapperBase, label: str) -> Any:
    """A metric's child for one label value, looked up once: `labels()` checks and locks
    on every call, and a batch makes about ten (phases, record kinds, event types)."""
    return metric.labels(label)


def _log_batch(outcome: BatchOutcome, seconds: float, partitions: list[str], waited: float) -> None:
    metrics.BATCH_SIZE.observe(outcome.records)
    metrics.BATCH_SECONDS.observe(seconds)
    for phase, ms in outcome.phases.items():
        _child(metrics.BATCH_PHASE_SECONDS, phase).observe(ms / 1000)
    _child(metrics.RECORDS, "raw").inc(outcome.raws)
    _child(metrics.RECORDS, "command").inc(outcome.commands)
    metrics.MESSAGES_STORED.inc(outcome.stored)
    metrics.MESSAGES_READ.inc(outcome.read)
    for kind, n in outcome.events.items():
        _child(metrics.EVENTS, kind).inc(n)
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
        # Age of the batch's oldest record when the batch started: produce, fetch, queue.
        waited_ms=round(waited * 1000, 1),
        phases_ms=outcome.phases,
    )


def _ack(app: StreamsApp, messages: Sequence[Message]) -> None:
    for message in messages:
        message.ack(app.consumer)


def _take(app: StreamsApp, messages: list[Message]) -> list[Message]:
    """The records to process, tracked as a Faust stream tracks what it reads; those of an
    earlier generation or fetched around a flow stop are dropped, as a stream drops them
    (they are fetched again from the committed offsets)."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    consumer = app.consumer
    taken = []
    for message in messages:
        if message.generation_id != generation:
            continue
        if not message.tracked:
            message.tracked = True
            consumer.track_message(message)
        # Acknowledged (one reference) once the sink has written the batch's projections.
        message.incref()
        taken.append(message)
    return taken


def _batch_done(
    app: StreamsApp,
    messages: Sequence[Message],
    started: float,
    now: float,
    outcome: BatchOutcome,
) -> None:
    """Log a batch whose events are out; its records are acknowledged once the sink has
    written its projections, which later batches do not wait for."""
    waited = now - min(message.timestamp for message in messages)
    partitions = sorted({f"{m.topic}:{m.partition}" for m in messages})
    _log_batch(outcome, time.perf_counter() - started, partitions, waited)
    _observe_delay(messages)
    app.projector.offer(outcome.projections, partial(_ack, app, messages))


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
        # (streams/table/recovery.py).
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
    # Filled by the consumer a fetch at a time (streams/consumer.py); cleared with
    # Faust's stream buffers when flow control resumes after a rebalance.
    app.source_buffer = SourceBuffer(
        (topics.raw_messages, topics.commands), limit=4 * settings.streams_batch_size
    )
    app.flow_control.manage_queue(cast(Any, app.source_buffer))
    positions = PartitionPositions((topics.raw_messages, topics.commands))

    @app.on_partitions_revoked.connect
    def forget_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """A partition gone to another worker leaves this one's /metrics at once."""
        revoked: Set[TP] = args[0]
        positions.forget(revoked)

    @app.agent(source, name="process")
    async def process(stream: StreamT[bytes]) -> None:
        """Process raw messages and commands in batches; acknowledge only what succeeded.

        No fixed wait: a batch takes whatever is buffered the moment the loop is free (one
        record at a time when traffic is light, up to `HUB_STREAMS_BATCH_SIZE` under load).
        """
        aiter(cast(Any, stream).channel)  # subscribes the consumer to the source topics
        pipeline = BatchPipeline(app.runner)
        try:
            while True:
                taken = await app.source_buffer.take(settings.streams_batch_size)
                messages = _take(app, taken)
                if not messages:
                    continue
                records = [
                    SourceRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in messages
                ]
                done = partial(_batch_done, app, messages, time.perf_counter(), time.time())
                await pipeline.submit(records, done)
        finally:
            await pipeline.close()

    install_presence(app, settings)  # its own agent and table, off the message path

    @app.page("/health")
    async def health_page(view: Any, request: Any) -> Any:
        """Liveness and the projection sink's lag."""
        body = app.health()
        return view.json(body, status=200 if body["status"] == "ok" else 503)

    @app.page("/metrics")
    async def metrics_page(view: Any, request: Any) -> Any:
        """Prometheus text exposition."""
        app.health()  # hub_healthy as of this scrape
        positions.scrape(app.consumer)
        # aiohttp refuses a charset in `content_type`; a header carries it unchanged.
        return view.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def run_worker(settings: Settings) -> None:
    """Run one streams worker in this process until a signal stops it."""
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
