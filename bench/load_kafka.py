"""Kafka round trip (P3's baseline): produce at a fixed rate, consume, time each record.

The producer is the hub's (`hubcore.kafka.create_producer`: acks=all, idempotent,
no linger, lz4) and the consumer reads every partition without a group, as the
gateway's does, so this is the floor a hop through the same broker costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.arrivals import Arrivals
from bench.data import raw_message
from bench.stats import Latency
from hubcore.kafka import create_producer
from hubcore.settings import Settings

_DRAIN_SECONDS = 10.0


async def _assign_all(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Read every partition of `topic` from its current end."""
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer._client.force_metadata_update()  # a topic created just now
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)


async def run(
    bootstrap: str, topic: str, rate: float, duration: float, warmup: float
) -> dict[str, Any]:
    """Round trips of `rate` records/s for `warmup + duration` s; the first `warmup` s
    are not counted."""
    settings = Settings(_env_file=None, kafka_bootstrap=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    producer = create_producer(settings)
    times = Arrivals(int(rate * (warmup + duration)))
    # A realistic record size: a raw message of the hub, its sequence number in front.
    filler = raw_message(0, 1, 1).to_json()

    async def consume() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    times.arrive(int(record.value[: record.value.index(b" ")]), now)

    await consumer.start()
    await producer.start()
    try:
        await _assign_all(consumer, topic)
        reader = asyncio.create_task(consume())
        acks = []
        async for n in times.paced(rate):
            value = f"{n} ".encode() + filler
            acks.append(await producer.send(topic, key=f"user{n % 20}".encode(), value=value))
        await asyncio.gather(*acks)
        await times.drain(_DRAIN_SECONDS)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    finally:
        await producer.stop()
        await consumer.stop()
    measured = times.latencies(skip=int(rate * warmup))
    return {
        "rate": rate,
        "seconds": duration,
        "delivered": len(measured),
        **Latency.of_seconds(measured).as_dict(),
        "record_bytes": len(filler) + 6,
    }
