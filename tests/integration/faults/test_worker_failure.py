"""Three `hub streams` workers work through 100,000 messages; one of them, at random, is
SIGKILLed three times at random points of the run. The store holds exactly the 100,000,
unread counts equal the messages of each user and conversation, and every user got the
`new_message` event of each of its messages. Each kill also times the rebalance: from the
SIGKILL to a surviving worker's first batch of a partition the dead one was working on
(the victim is restarted only then).

The raw records go straight into the raw-messages topic (webhooks would only add the
connectors' time); the shared broker and store with this test's own topics and database.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import RawMessage
from streams.worker import app_id
from tests.streams_helpers import Worker, produce, raw_message, wait_for, wait_ready, worker_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.timeout(900),
]

WORKERS = 3
MESSAGES = 100_000
USERS = 60
CHATS = 4  # per user
KILLS = 3
RECENT = 3.0  # seconds: a partition batched this recently is one the worker was working on


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[Worker]]:
    running = []
    for n in range(WORKERS):
        env = worker_env(settings, tmp_path / f"w{n}", HUB_STREAMS_SESSION_TIMEOUT="6")
        running.append(Worker(env, tmp_path / f"worker{n}.log"))
    yield running
    for worker in running:
        worker.stop()


def _processed(workers: list[Worker]) -> int:
    """Records batched so far by all workers (a batch a kill cut short counts again)."""
    return sum(entry["records"] for worker in workers for entry in worker.entries("batch"))


async def _unfinished(settings: Settings) -> set[str]:
    """`<topic>:<partition>` of the raw partitions whose committed offset is short of their
    end: a new owner of one of them must batch records again."""
    topic = Topics.from_settings(settings).raw_messages
    parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(app_id(settings))
        end = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
        await admin.close()
    return {
        f"{tp.topic}:{tp.partition}"
        for tp in parts
        if (committed[tp].offset if tp in committed else -1) < end[tp]
    }


async def _kill_and_time_rebalance(
    settings: Settings, victim: Worker, workers: list[Worker]
) -> float | None:
    """SIGKILL `victim`; seconds until another worker batches one of the partitions it was
    working on and had not finished (None when there was none), then restart it."""
    now = time.time()
    recent = {p for t, parts in victim.batch_times() if t > now - RECENT for p in parts}
    killed = time.time()
    victim.kill()
    # Committed offsets of the dead worker's partitions stay put until a new owner works.
    owned = recent & await _unfinished(settings)
    took: float | None = None
    if owned:

        async def taken_over() -> float | None:
            firsts = [
                t
                for w in workers
                if w is not victim
                for t, parts in w.batch_times()
                if t > killed and owned & set(parts)
            ]
            return min(firsts) - killed if firsts else None

        took = await wait_for(taken_over, timeout=90, what="the dead worker's partitions moving")
    victim.start()
    return took


async def _announced(settings: Settings, topic: str) -> dict[str, set[str]]:
    """User (the record key) -> ids of the messages its `new_message` events carried, read
    from the whole of user-events without keeping the records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, set[str]] = {}
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        deadline = time.monotonic() + 120
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "user-events not read to its end in 120 s"
            for batch in (await consumer.getmany(*parts, timeout_ms=500)).values():
                for record in batch:
                    if b'"new_message"' in record.value:
                        event = orjson.loads(record.value)
                        if event["type"] == "new_message":
                            ids = found.setdefault(record.key.decode(), set())
                            ids.add(event["data"]["message"]["id"])
    finally:
        await consumer.stop()
    return found


async def _wait_counts_exact(db: AsyncDatabase[Document], messages: list[RawMessage]) -> None:
    """The projections settle on the produced messages' counts (none read): per user and
    per conversation. A message stored twice or lost would leave them off for good."""
    expected = dict(Counter((m.user_id, m.conversation_id) for m in messages))
    totals = dict(Counter(m.user_id for m in messages))

    async def settled() -> bool:
        unread = {d["_id"]: d["total"] async for d in db["unread"].find({})}
        if unread != totals:
            return False
        convs = {
            (d["userId"], d["_id"]): d["unreadCount"] async for d in db["conversations"].find({})
        }
        return convs == expected

    await wait_for(settled, timeout=400, what="the counts of all messages")


async def test_workers_killed_at_random_lose_and_double_nothing(
    settings: Settings, workers: list[Worker], mongo_db: AsyncDatabase[Document]
) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    for worker in workers:
        worker.start()
    for worker in workers:
        await wait_ready(worker, timeout=120)
    rng = random.Random(13)
    messages = [
        raw_message(f"user-{n % USERS}", n, chat=f"chat-{rng.randrange(CHATS)}")
        for n in range(MESSAGES)
    ]
    started = time.monotonic()
    await produce(
        settings, topics.raw_messages, ((m.user_id.encode(), m.to_json()) for m in messages)
    )
    produced = time.monotonic() - started

    rebalances = []
    for point in sorted(rng.uniform(0.1, 0.7) for _ in range(KILLS)):

        async def reached(point: float = point) -> bool:
            return _processed(workers) >= point * MESSAGES

        await wait_for(reached, timeout=300, what=f"{point:.0%} of the messages processed")
        rebalances.append(await _kill_and_time_rebalance(settings, rng.choice(workers), workers))

    # Counts are cheap to read; a count of the messages scans all of them (FerretDB).
    await _wait_counts_exact(mongo_db, messages)
    took = time.monotonic() - started
    times = ", ".join("-" if r is None else f"{r:.1f}s" for r in rebalances)
    print(f"worker failure: produced in {produced:.1f}s, all counted after {took:.1f}s")
    print(f"worker failure: rebalances (kill -> survivor's batch) {times}", flush=True)
    assert await mongo_db["messages"].count_documents({}) == MESSAGES

    # At least once per message (a killed batch may emit its events again), to its user.
    announced = await _announced(settings, topics.user_events)
    wanted: dict[str, set[str]] = {}
    for m in messages:
        wanted.setdefault(m.user_id, set()).add(m.id)
    took = time.monotonic() - started
    print(f"worker failure: user-events read after {took:.1f}s", flush=True)
    assert announced == wanted
    assert any(r is not None for r in rebalances), "no kill hit a worker while it worked"
