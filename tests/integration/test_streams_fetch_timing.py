"""A worker that consumes late never waits for a fetch of its idle partitions.

aiokafka keeps one fetch in flight per broker and leaves out the partitions whose fetched
records are not consumed yet; after `prefetch_backoff` it fetches the others without them.
When those are all idle the broker holds that fetch for `fetch_max_wait_ms`, and nothing
new is fetched before it returns: with Faust's settings a record produced meanwhile to the
busy partition arrived over a second late (at 200 msg/s the worker fell into this and
stayed, records reaching it 1-2 s late). The hub's fetch wait (`hubcore.kafka`) keeps that
record's delay short. Real broker, a partition with traffic and idle ones.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition

from hubcore.kafka import (
    FETCH_MAX_WAIT_MS,
    Topics,
    create_consumer,
    create_producer,
    ensure_topics,
)
from hubcore.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAUST_FETCH_MAX_WAIT_MS = 1500  # what Faust passes to aiokafka
BUSY_FOR = 0.4  # seconds the consumer leaves a fetched record unconsumed


async def _late_consumer_delay(settings: Settings, *, fetch_max_wait_ms: int) -> float:
    """Seconds from producing a record to the busy partition until it is fetched, when
    the previous record was consumed `BUSY_FOR` seconds after it had been fetched."""
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    consumer = create_consumer(settings, group_id=None, fetch_max_wait_ms=fetch_max_wait_ms)
    producer = create_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        busy = tps[0]
        await producer.send_and_wait(topic, b"first", partition=busy.partition)
        await asyncio.sleep(BUSY_FOR)  # fetched meanwhile, but the worker is busy
        first = await consumer.getmany(timeout_ms=5000)
        assert [r.value for r in first.get(busy, [])] == [b"first"]
        started = time.monotonic()
        await producer.send_and_wait(topic, b"second", partition=busy.partition)
        second = await consumer.getmany(timeout_ms=5000)
        assert [r.value for r in second.get(busy, [])] == [b"second"]
        return time.monotonic() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def test_faust_fetch_settings_hold_the_next_record(settings: Settings) -> None:
    # The cause, shown: the fetch of the idle partitions alone is held for 1.5 s.
    delay = await _late_consumer_delay(settings, fetch_max_wait_ms=FAUST_FETCH_MAX_WAIT_MS)
    assert delay > 0.8


async def test_hub_fetch_wait_fetches_the_next_record_at_once(settings: Settings) -> None:
    # The hub's consumers (the streams worker's Faust consumer too) use FETCH_MAX_WAIT_MS.
    delay = await _late_consumer_delay(settings, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    assert delay < 0.3
