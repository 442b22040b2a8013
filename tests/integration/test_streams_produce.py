"""The worker's output records, sent one aiokafka batch per topic-partition
(`streams.batch.produce`): each lands on the partition the producer's partitioner gives its
key, in the order added, with its headers; a partition batch that fills up is sent at once
and the next one continues it; the acks resolve once the broker has every record; a failed
send fails the flush. Real broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaError

from hubcore.kafka import Topics, create_producer, ensure_topics, partition_for
from hubcore.settings import Settings
from streams.batch.produce import BatchingKafkaSink, PartitionBatches, last_offset
from tests.streams_helpers import consume_all

pytestmark = pytest.mark.integration

USERS = [f"user{i:02d}".encode() for i in range(12)]


async def test_records_land_on_their_key_partition_in_order(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).user_events
    # Small batches: a partition's records fill several (shipped as they fill).
    producer = create_producer(settings, max_batch_size=2048)
    await producer.start()
    try:
        sink = BatchingKafkaSink(producer)
        sent = [(USERS[n % len(USERS)], b"%04d" % n + b"." * 200) for n in range(300)]
        for n, (key, value) in enumerate(sent):
            await sink.send(topic, key, value, [("n", b"%d" % n)])
        assert sink.batches._shipped, "no partition batch filled up"
        await sink.flush()
    finally:
        await producer.stop()
    got = await consume_all(settings, topic, want=len(sent))
    assert len(got) == len(sent)
    partitions = list(range(settings.topic_partitions))
    by_key: dict[bytes, list[bytes]] = {}
    for record in got:
        assert record.partition == partition_for(record.key, partitions, partitions)
        assert dict(record.headers) == {"n": record.value[:4].lstrip(b"0") or b"0"}
        by_key.setdefault(record.key, []).append(record.value)
    assert by_key == {key: [v for k, v in sent if k == key] for key in USERS}


async def test_ship_reports_each_partition_batch_and_its_last_offset(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).user_events
    producer = create_producer(settings)
    await producer.start()
    try:
        batches = PartitionBatches(producer)
        for n in range(5):
            await batches.add(topic, b"k", b"a%d" % n, partition=1)
        for n in range(3):
            await batches.add(topic, b"k", b"b%d" % n, partition=2)
        shipped = await batches.ship()
        written = await asyncio.gather(*(future for future, _ in shipped))
        assert not await batches.ship()  # shipped once
    finally:
        await producer.stop()
    lasts = {
        meta.partition: last_offset(meta, records)
        for meta, (_, records) in zip(written, shipped, strict=True)
    }
    got = await consume_all(settings, topic, want=8)
    assert lasts == {p: max(r.offset for r in got if r.partition == p) for p in (1, 2)}


async def test_a_failed_send_fails_the_flush(settings: Settings) -> None:
    producer = create_producer(settings)
    await producer.start()
    sink = BatchingKafkaSink(producer)
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).user_events
    await sink.send(topic, b"k", b"v")
    await producer.stop()  # what was added can no longer be sent
    with pytest.raises(KafkaError):
        await sink.flush()
