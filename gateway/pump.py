"""The one Kafka consumer of a gateway process: every partition of user-events, to listeners."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code

from gateway.fetch import FetchEncoder, PartitionData, fetched_records
from gateway.fresh import FRESH_TYPES
from gateway.metrics import EVENTS_CONSUMED, EVENTS_INVALID, EVENTS_ROUTED
from gateway.registry import Registry
from hubcore.errors import HubError
from hubcore.kafka import Topics, close_consumer, create_consumer, ensure_topics
from hubcore.retry import Backoff
from hubcore.settings import Settings
from schemas.frames import InvalidEvent, decode_event

log = structlog.get_logger("gateway.pump")

# How long the broker holds a fetch that finds nothing new. The hub's 20 ms wait
# (hubcore.kafka) is for consumers that leave fetched records unconsumed for a while: a
# pump takes every fetched record at once, so its next fetch has all partitions in it
# and returns as soon as any has a record. A longer wait costs no latency here and
# saves 48 empty fetches a second: half of the gateway's CPU per event at 100 msg/s.
FETCH_MAX_WAIT_MS = 500
# aiokafka's defaults, as the pump's consumer had them.
FETCH_MAX_BYTES = 52_428_800
PARTITION_MAX_BYTES = 1_048_576
_OFFSET_OUT_OF_RANGE = 1
# Reconnecting while Kafka is away: 0.5 s doubling to 5 s, forever.
_RECONNECT = Backoff(first=0.5, max_delay=5.0)


def standalone_consumer(
    settings: Settings, *, offset_reset: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer outside any group that commits nothing: partitions are assigned by hand."""
    return create_consumer(settings, group_id=None, auto_offset_reset=offset_reset, **overrides)


class EventPump:
    """Reads `user-events` and hands each event to its user's connections on this process.

    All partitions are assigned by hand (no consumer group): every gateway instance sees
    every event and delivers to the connections it holds. It starts at the end, and
    dispatching a fetched batch never awaits, so `position(p)` is exactly the offset from
    which a newly registered connection receives live events; resume reads up to there.
    A consumer finds the starting positions; the records come through `gateway.fetch`,
    one fetch per partition leader in flight (a record is dispatched as it is fetched).
    """

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self._topic = Topics.from_settings(settings).user_events
        self._registry = registry
        self._next: dict[int, int] = {}
        self._lost: set[int] = set()  # partitions whose position is gone (retention)
        self.ready = asyncio.Event()

    def position(self, partition: int) -> int | None:
        """The next offset of `partition` this pump dispatches; None before it is ready."""
        return self._next.get(partition)

    @property
    def partitions(self) -> list[int]:
        """The partitions this pump reads (empty until ready)."""
        return sorted(self._next)

    async def run(self) -> None:
        """Connect (retrying while Kafka is away), then dispatch until cancelled."""
        failures = 0
        while True:
            consumer = standalone_consumer(
                self._settings, offset_reset="latest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS
            )
            client = AIOKafkaClient(
                bootstrap_servers=self._settings.kafka_bootstrap,
                request_timeout_ms=int(self._settings.kafka_request_timeout * 1000)
                + FETCH_MAX_WAIT_MS,
                client_id="hub-gateway-pump",
            )
            try:
                await self._start(consumer)
                await close_consumer(consumer)  # positions known: the fetches are ours
                await client.bootstrap()
                await client.set_topics([self._topic])  # metadata of this topic only
                failures = 0
                await self._consume(client)
            except Exception as exc:
                # Kafka away (or a bug): never give up; dispatch resumes where it stopped.
                failures += 1
                delay = _RECONNECT.delay(failures)
                if isinstance(exc, KafkaError | OSError | HubError):
                    log.warning("pump_retry", error=str(exc), retry_in=delay)
                else:
                    log.exception("pump_error", retry_in=delay)
                await close_consumer(consumer)
                await _close_client(client)
                await asyncio.sleep(delay)
            except BaseException:
                await close_consumer(consumer)
                await _close_client(client)
                raise

    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        await ensure_topics(self._settings)
        partitions = await self._partitions()
        await consumer.start()
        tps = [TopicPartition(self._topic, p) for p in partitions]
        consumer.assign(tps)
        if self._next:
            # Reconnected after a failure: go on from where dispatch stopped, so connections
            # and resumes in flight see no gap.
            for tp in tps:
                if tp.partition in self._next and tp.partition not in self._lost:
                    consumer.seek(tp, self._next[tp.partition])
                else:
                    await consumer.seek_to_end(tp)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:
            self._next[tp.partition] = await consumer.position(tp)
        self._lost.clear()
        self.ready.set()
        log.info("pump_ready", topic=self._topic, positions=dict(self._next))

    async def _partitions(self) -> list[int]:
        """The topic's partitions, from the controller (a fresh topic may need a moment)."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.kafka_bootstrap,
            request_timeout_ms=int(self._settings.kafka_request_timeout * 1000),
        )
        try:
            await admin.start()
            for _ in range(40):
                (described,) = await admin.describe_topics([self._topic])
                if described["partitions"]:
                    return sorted(p["partition"] for p in described["partitions"])
                await asyncio.sleep(0.25)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        raise KafkaError(f"topic {self._topic} has no partitions")

    async def _consume(self, client: AIOKafkaClient) -> None:
        """Fetch and dispatch until a failure, one loop per leader of the partitions."""
        by_leader: dict[int, list[int]] = {}
        for partition in self._next:
            leader = client.cluster.leader_for_partition(TopicPartition(self._topic, partition))
            if leader is None or leader < 0:
                raise KafkaError(f"no leader for {self._topic}/{partition}")
            by_leader.setdefault(leader, []).append(partition)
        if len(by_leader) == 1:
            ((node, partitions),) = by_leader.items()
            await self._fetch_loop(client, node, sorted(partitions))
            return
        try:
            async with asyncio.TaskGroup() as group:
                for node, partitions in by_leader.items():
                    group.create_task(self._fetch_loop(client, node, sorted(partitions)))
        except ExceptionGroup as failed:  # the first failure, as `run` reports and retries it
            raise failed.exceptions[0] from None

    async def _fetch_loop(self, client: AIOKafkaClient, node: int, partitions: list[int]) -> None:
        encoder = FetchEncoder(
            self._topic,
            max_wait_ms=FETCH_MAX_WAIT_MS,
            max_bytes=FETCH_MAX_BYTES,
            partition_max_bytes=PARTITION_MAX_BYTES,
        )
        positions = self._next
        loop = asyncio.get_running_loop()
        spacing = self._settings.gateway_fetch_spacing_ms / 1000
        due = 0.0
        while True:
            # Under load a fetch per produced batch is the pump's main cost (issue 21):
            # spaced fetches take what came meanwhile at once. At light load the pending
            # fetch is already at the broker when a record comes: nothing waits.
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            due = loop.time() + spacing
            request = encoder.request((p, positions[p]) for p in partitions)
            response: list[PartitionData] = await client.send(node, request)
            for data in response:
                self.take(data)

    def take(self, data: PartitionData) -> None:
        """Dispatch one partition's part of a fetch response (no await: see the class)."""
        partition = data.partition
        if data.error:
            if data.error == _OFFSET_OUT_OF_RANGE:
                # Gone by retention while away: the restart starts that partition again
                # from its end, as the consumer's `latest` reset did.
                self._lost.add(partition)
            raise for_code(data.error)(f"fetch of {self._topic}/{partition}")
        if not data.records or partition not in self._next:
            return
        try:
            for position, records in fetched_records(data.records, self._next[partition]):
                if records:
                    self.dispatch(partition, records)
                self._next[partition] = position
        except ValueError as exc:
            raise KafkaError(f"corrupt records in {self._topic}/{partition}: {exc}") from exc

    def dispatch(self, partition: int, records: list[Any]) -> None:
        """Route one partition's records; synchronous so registrations see a clean cut."""
        ws = self._registry.ws
        routed = 0
        for record in records:
            key = record.key
            conns = ws.get(key)
            if conns is None:
                continue
            try:
                event = decode_event(partition, record.offset, key, record.value)
            except InvalidEvent as exc:
                EVENTS_INVALID.inc()
                log.warning(
                    "event_invalid", partition=partition, offset=record.offset, error=str(exc)
                )
                continue
            routed += 1
            for conn in conns:
                conn.deliver(event)
            if event.type in FRESH_TYPES:
                self._registry.fresh.observe(key, event)
        if records:
            self._next[partition] = records[-1].offset + 1
            EVENTS_CONSUMED.inc(len(records))
        if routed:
            EVENTS_ROUTED.inc(routed)


async def _close_client(client: AIOKafkaClient) -> None:
    """Close a client being dropped; what it fails with is of no interest."""
    with contextlib.suppress(Exception):
        await client.close()
