"""The real broker: durable idempotent produce, consume back, and the hub's topic setup."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from hubcore.kafka import Topics, create_consumer, create_producer, ensure_topics, kafka_ping
from hubcore.settings import Settings
from schemas import RawMessage
from tests.integration.connectors.harness import read_topic

pytestmark = pytest.mark.integration


async def test_produce_acks_all_idempotent_then_consume(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    producer = create_producer(settings)
    await producer.start()
    try:
        sent = []
        for i in range(50):
            meta = await producer.send_and_wait(
                topic, key=f"user-{i % 5}".encode(), value=f'{{"n": {i}}}'.encode()
            )
            assert meta.offset >= 0
            sent.append((f"user-{i % 5}", i, meta.partition))
        # The hub's producer: every in-sync replica acks (-1 is `all`), and idempotence
        # is on, a producer id given by the broker, so a retried send is not written twice.
        assert producer._sender._acks == -1
        assert producer._txn_manager is not None and producer._txn_manager.has_pid()
    finally:
        await producer.stop()

    got = [
        (r.key.decode(), int(r.value.decode()[6:-1]), r.partition)
        for r in await read_topic(settings, topic)
    ]
    assert sorted(got, key=lambda x: x[1]) == sent
    # Same key, same partition: a user's records stay in order.
    by_user = {u: {p for uu, _, p in got if uu == u} for u, _, _ in got}
    assert all(len(parts) == 1 for parts in by_user.values())


async def test_ensure_topics_uses_partitions_and_retention(settings: Settings) -> None:
    await ensure_topics(settings)
    await ensure_topics(settings)  # idempotent
    topics = Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topics.raw_messages, topics.user_events])
        assert [len(t["partitions"]) for t in described] == [settings.topic_partitions] * 2
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.raw_messages)]
        )
        entries = {c[0]: c[1] for c in configs[0].resources[0][4]}
        assert entries["retention.ms"] == "-1"
    finally:
        await admin.close()


async def test_record_schema_survives_the_broker(settings: Settings) -> None:
    from tests.unit.test_schemas import _raw

    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    record = _raw()
    producer = create_producer(settings)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, key=b"alice", value=record.to_json())
    finally:
        await producer.stop()
    consumer = create_consumer(settings)
    await consumer.start()
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        msg = await consumer.getone()
    finally:
        await consumer.stop()
    assert RawMessage.from_json(msg.value) == record


async def test_ping_tells_up_from_down(settings: Settings) -> None:
    assert await kafka_ping(settings.kafka_bootstrap)
    assert not await kafka_ping("127.0.0.1:1", timeout=1)
