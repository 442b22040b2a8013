"""A worker that consumes late never waits for a fetch of its idle partitions.

aiokafka keeps one fetch in flight per broker and leaves out the partitions whose fetched
records are not consumed yet; after `prefetch_backoff` it fetches the others without them.
When those are all idle the broker holds that fetch for `fetch_max_wait_ms`, and nothing
new is fetched before it returns: with Faust's settings a record produced meanwhile to the
busy partition arrived over a second late (at 200 msg/s the worker fell into this and
stayed, records reaching it 1-2 s late). The hub's fetch wait (`hubcore.kafka`) keeps that
record's delay short. The worker waits longer only while no fetched record of the
partitions it reads is waiting (`streams.consumer.WaitAdaptingFetcher`): then nothing is
left out of a fetch, the broker answers at the first record, and an idle worker asks a
few times a second instead of fifty. Real broker, a partition with traffic and idle ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from hubcore.kafka import (
    FETCH_MAX_WAIT_MS,
    Topics,
    create_consumer,
    create_producer,
    ensure_topics,
)
from hubcore.settings import Settings
from streams.consumer import IDLE_FETCH_MAX_WAIT_MS, StreamsConsumer, adapt_fetch_wait
from streams.worker import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAUST_FETCH_MAX_WAIT_MS = 1500  # what Faust passes to aiokafka
BUSY_FOR = 0.4  # seconds the consumer leaves a fetched record unconsumed


def _faust_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The aiokafka consumer Faust's own consumer thread makes for the worker's app."""
    app = create_app(settings)
    consumer = cast(StreamsConsumer, app.consumer)
    thread = AIOKafkaConsumerThread(consumer, loop=app.loop, beacon=consumer.beacon)
    return thread._create_worker_consumer(cast(Any, app.transport))


def _worker_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The aiokafka consumer the worker makes: its app's consumer thread, as it starts
    (`StreamsConsumerThread.on_start` adapts the fetcher once it is started)."""
    app = create_app(settings)
    thread = cast(StreamsConsumer, app.consumer)._new_consumer_thread()
    return thread._create_worker_consumer(cast(Any, app.transport))


async def _start_worker_consumer(consumer: AIOKafkaConsumer) -> None:
    await consumer.start()
    adapt_fetch_wait(consumer)


async def _start(consumer: AIOKafkaConsumer) -> None:
    await consumer.start()


def _hub_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of the other processes (`create_consumer`, its defaults)."""
    return create_consumer(settings, group_id=None)


async def _at_end(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> list[TopicPartition]:
    """Assign every partition of `topic`, each positioned at its end."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return tps


async def _late_consumer_delay(
    settings: Settings,
    make: Callable[[Settings], AIOKafkaConsumer],
    fetch_max_wait_ms: int,
    start: Callable[[AIOKafkaConsumer], Any] = _start,
) -> float:
    """Seconds from producing a record to the busy partition until `make`'s consumer
    fetches it, when the previous record was consumed `BUSY_FOR` seconds after it had been
    fetched. The consumer must be made with a wait of `fetch_max_wait_ms`."""
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    consumer = make(settings)
    assert consumer._fetch_max_wait_ms == fetch_max_wait_ms
    producer = create_producer(settings)
    await start(consumer)
    await producer.start()
    try:
        tps = await _at_end(consumer, topic, settings.topic_partitions)
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
    # The cause, shown with Faust's own consumer: the fetch of the idle partitions alone
    # is held for 1.5 s.
    delay = await _late_consumer_delay(settings, _faust_consumer, FAUST_FETCH_MAX_WAIT_MS)
    assert delay > 0.8


@pytest.mark.parametrize(
    ("make", "start"),
    [(_worker_consumer, _start_worker_consumer), (_hub_consumer, _start)],
    ids=["worker", "others"],
)
async def test_hub_fetch_wait_fetches_the_next_record_at_once(
    settings: Settings,
    make: Callable[[Settings], AIOKafkaConsumer],
    start: Callable[[AIOKafkaConsumer], Any],
) -> None:
    # The consumers the hub makes, unchanged: the worker's (Faust's, with the hub's
    # override) and `create_consumer`'s. 0.3 s: far above a 20 ms wait, far below 1.5 s
    # (and above the worker's idle wait, which a waiting record must not get).
    delay = await _late_consumer_delay(settings, make, FETCH_MAX_WAIT_MS, start)
    assert delay < 0.3


async def test_idle_worker_waits_longer_and_still_fetches_at_once(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    consumer = _worker_consumer(settings)
    producer = create_producer(settings)
    await _start_worker_consumer(consumer)
    await producer.start()
    try:
        tps = await _at_end(consumer, topic, settings.topic_partitions)
        # Nothing fetched is waiting: the fetch in flight has every partition.
        assert not await consumer.getmany(timeout_ms=3 * IDLE_FETCH_MAX_WAIT_MS)
        assert consumer._fetcher._fetch_max_wait_ms == IDLE_FETCH_MAX_WAIT_MS
        delays = []
        for n in range(5):
            # Into a fetch already held by the broker, whichever partition.
            await asyncio.sleep(IDLE_FETCH_MAX_WAIT_MS / 1000 / 2)
            started = time.monotonic()
            await producer.send_and_wait(topic, b"%d" % n, partition=n % len(tps))
            fetched = await consumer.getmany(timeout_ms=5000)
            delays.append(time.monotonic() - started)
            assert [r.value for part in fetched.values() for r in part] == [b"%d" % n]
        # Well below the wait: answered at the record, not at the wait's end.
        assert sorted(delays)[len(delays) // 2] < IDLE_FETCH_MAX_WAIT_MS / 1000 / 2, delays
    finally:
        await producer.stop()
        await consumer.stop()
