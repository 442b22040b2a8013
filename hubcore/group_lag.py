"""Consumer groups' lag read from Kafka itself, for the alerts that must fire while a
consumer is stuck.

A worker's own lag gauge is set after each batch it finishes: a worker stuck retrying
keeps showing the lag of its last good batch, and a partition that moved away keeps its
old value on the worker that lost it. This reads, at a scrape, each group's committed
offset and each partition's end offset from the brokers, so the lag is the group's
whoever owns the partition, and keeps how long the committed offset has not moved while
records wait (`hub_kafka_group_commit_stalled_seconds`): it grows while a worker is
stuck, and is 0 once the group has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from hubcore.kafka import Topics, close_consumer, create_consumer
from hubcore.settings import Settings

log = structlog.get_logger("hubcore.group_lag")

GROUP_LAG = Gauge(
    "hub_kafka_group_lag",
    "Records past a consumer group's committed offset, per partition (read from Kafka at "
    "the scrape; the same on every process that reports it).",
    ["group", "topic", "partition"],
)
COMMIT_STALLED = Gauge(
    "hub_kafka_group_commit_stalled_seconds",
    "How long a group's committed offset has not advanced while records wait on the "
    "partition; 0 when caught up.",
    ["group", "topic", "partition"],
)
READ_OK = Gauge(
    "hub_kafka_group_lag_read_ok",
    "1 when the last read of committed and end offsets succeeded, 0 when it failed.",
)

Key = tuple[str, str, int]
K = TypeVar("K")


class CommitStall(Generic[K]):
    """Per partition: since when its committed offset has stood while records waited past
    it. Counted from the first observation that saw them wait at that offset: when they
    came before it is unknown. Also the worker's own view (streams/positions.py)."""

    def __init__(self) -> None:
        self._since: dict[K, tuple[int, float | None]] = {}

    def seconds(self, key: K, committed: int, lag: int, now: float) -> float:
        """Seconds the commit has stood with `lag` records waiting; 0 when none wait."""
        seen = self._since.get(key)
        since: float | None
        if lag <= 0:
            since = None
        elif seen is None or seen[0] != committed or seen[1] is None:
            since = now
        else:
            since = seen[1]
        self._since[key] = (committed, since)
        return 0.0 if since is None else now - since

    def drop(self, key: K) -> bool:
        """Forget `key`; whether it was known."""
        return self._since.pop(key, None) is not None

    def known(self) -> list[K]:
        return list(self._since)


def watched_groups(settings: Settings) -> dict[str, list[str]]:
    """The groups whose standstill loses the hub its purpose, and their topics: the streams
    workers (streams.worker.app_id), the reply senders
    (connectors.outbound.consumer.group_id) and the webhook deliveries
    (connectors.deliveries.consumer.group_id); a unit test keeps the names equal."""
    topics = Topics.from_settings(settings)
    return {
        f"{topics.namespace}.streams": [topics.raw_messages, topics.commands],
        f"{topics.namespace}.connectors-outbound": [topics.outbound],
        f"{topics.namespace}.webhook-deliveries": [topics.user_events],
    }


class GroupLagProbe:
    """Reads `groups` (group id -> its topics) at most every `min_interval` seconds,
    each read bounded by `timeout`, and sets the gauges."""

    def __init__(
        self,
        settings: Settings,
        groups: Mapping[str, Sequence[str]],
        *,
        min_interval: float = 5.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.groups = {group: list(topics) for group, topics in groups.items()}
        self.min_interval = min_interval
        self.timeout = timeout
        self.clock = clock
        self._last_read: float | None = None
        self._stall = CommitStall[Key]()
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Update the gauges unless a read was made within `min_interval`; a failed read
        leaves them as they were and sets `hub_kafka_group_lag_read_ok` to 0."""
        async with self._lock:
            now = self.clock()
            if self._last_read is not None and now - self._last_read < self.min_interval:
                return
            self._last_read = now
            try:
                offsets = await asyncio.wait_for(self.read(), self.timeout)
            except Exception as exc:
                READ_OK.set(0)
                log.warning("group lag read failed", error=repr(exc)[:200])
                return
            READ_OK.set(1)
            self.observe(offsets, now)

    def observe(self, offsets: Mapping[Key, tuple[int, int]], now: float) -> None:
        """Set the gauges from (committed, end) offsets per partition, read at `now`."""
        for key, (committed, end) in offsets.items():
            group, topic, partition = key
            lag = max(0, end - committed)
            stalled = self._stall.seconds(key, committed, lag, now)
            GROUP_LAG.labels(group, topic, str(partition)).set(lag)
            COMMIT_STALLED.labels(group, topic, str(partition)).set(stalled)

    async def read(self) -> dict[Key, tuple[int, int]]:
        """(committed, end) per partition of each group's topics; a partition the group
        never committed counts from its first offset."""
        consumer = create_consumer(self.settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            await consumer.start()
            await admin.start()
            wanted = sorted({t for ts in self.groups.values() for t in ts})
            partitions = [
                TopicPartition(meta["topic"], part["partition"])
                for meta in await admin.describe_topics(wanted)
                if meta["error_code"] == 0  # a topic not created yet has nothing to lag
                for part in meta["partitions"]
            ]
            if not partitions:
                return {}
            ends = await consumer.end_offsets(partitions)
            firsts = await consumer.beginning_offsets(partitions)
            out: dict[Key, tuple[int, int]] = {}
            for group, topics in self.groups.items():
                committed = await admin.list_consumer_group_offsets(group)
                for tp in partitions:
                    if tp.topic in topics:
                        meta = committed.get(tp)
                        start = meta.offset if meta is not None and meta.offset >= 0 else None
                        out[(group, tp.topic, tp.partition)] = (
                            firsts[tp] if start is None else start,
                            ends[tp],
                        )
            return out
        finally:
            await close_consumer(consumer)
            with contextlib.suppress(Exception):  # closing a never-started client may raise
                await admin.close()
