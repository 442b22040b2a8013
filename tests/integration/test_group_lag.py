"""hubcore.group_lag against the real broker: a group's lag and how long its committed
offset has stood, as Kafka has them, and the gateway's `/metrics` reporting them."""

from __future__ import annotations

import re

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from hubcore.group_lag import COMMIT_STALLED, GROUP_LAG, GroupLagProbe, watched_groups
from hubcore.kafka import Topics, close_consumer, create_consumer, create_producer, ensure_topics
from hubcore.settings import Settings
from tests.integration.gateway_kit import RunningGateway

pytestmark = pytest.mark.integration


async def _produce(settings: Settings, topic: str, partition: int, count: int) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        for n in range(count):
            await producer.send_and_wait(
                topic, value=b"{}", key=f"k{n}".encode(), partition=partition
            )
    finally:
        await producer.stop()


async def _commit(settings: Settings, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = create_consumer(settings, group_id=group)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await close_consumer(consumer)


def _gauges(group: str, topic: str, partition: int) -> tuple[float, float]:
    labels = (group, topic, str(partition))
    lag: float = GROUP_LAG.labels(*labels)._value.get()
    stalled: float = COMMIT_STALLED.labels(*labels)._value.get()
    return lag, stalled


async def test_lag_and_commit_standstill_as_kafka_has_them(settings: Settings) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    streams_group = f"{settings.topic_namespace}.streams"
    now = [1000.0]
    probe = GroupLagProbe(settings, watched_groups(settings), min_interval=0, clock=lambda: now[0])
    tp = TopicPartition(topics.raw_messages, 1)
    await _produce(settings, tp.topic, tp.partition, 5)

    await probe.refresh()  # never committed: every record waits
    assert _gauges(streams_group, tp.topic, 1) == (5, 0)
    assert _gauges(streams_group, tp.topic, 0) == (0, 0)
    now[0] += 90
    await probe.refresh()  # nothing committed since: stuck for 90 s
    assert _gauges(streams_group, tp.topic, 1) == (5, 90)

    await _commit(settings, streams_group, tp, 3)
    now[0] += 10
    await probe.refresh()  # moved: behind, not stuck
    assert _gauges(streams_group, tp.topic, 1) == (2, 0)

    await _commit(settings, streams_group, tp, 5)
    now[0] += 10
    await probe.refresh()
    assert _gauges(streams_group, tp.topic, 1) == (0, 0)
    outbound = (f"{settings.topic_namespace}.connectors-outbound", topics.outbound, 1)
    assert _gauges(*outbound) == (0, 0)


async def test_the_gateway_reports_the_groups_lag(settings: Settings, gw: RunningGateway) -> None:
    topic = Topics.from_settings(settings).raw_messages
    await _produce(settings, topic, 2, 3)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{gw.base_url}/metrics")).text
    group = re.escape(f"{settings.topic_namespace}.streams")
    line = (
        rf'^hub_kafka_group_lag\{{group="{group}",partition="2",topic="{re.escape(topic)}"\}} 3\.0$'
    )
    assert re.search(line, text, re.M), text[-3000:]
    assert "hub_kafka_group_lag_read_ok 1.0" in text
