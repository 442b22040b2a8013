"""Three `hub streams` workers; SIGKILL one at a random moment three times (each restarted)
while they work through a backlog: the store holds every message once, unread counts
equal the store's truth, and every message got its user event."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.faults.kit import assert_counts_are_truth
from tests.streams_helpers import (
    Worker,
    consume_all,
    produce,
    raw_message,
    wait_for,
    wait_ready,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

WORKERS = 3
MESSAGES = 3000
USERS = 12
KILLS = 3


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[Worker]]:
    running = []
    for n in range(WORKERS):
        env = worker_env(
            settings,
            tmp_path / f"w{n}",
            HUB_STREAMS_SESSION_TIMEOUT="6",
            HUB_STREAMS_BATCH_SIZE="100",
        )
        running.append(Worker(env, tmp_path / f"worker{n}.log"))
    yield running
    for worker in running:
        worker.stop()


async def test_workers_killed_at_random_lose_and_double_nothing(
    settings: Settings, workers: list[Worker], mongo_db: AsyncDatabase[Document]
) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    for worker in workers:
        worker.start()
    await asyncio.gather(*(wait_ready(w, timeout=120) for w in workers))
    rng = random.Random(13)
    messages = [
        raw_message(f"user-{n % USERS}", n, chat=f"chat-{rng.randrange(5)}")
        for n in range(MESSAGES)
    ]
    await produce(
        settings, topics.raw_messages, [(m.user_id.encode(), m.to_json()) for m in messages]
    )
    started = time.monotonic()
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        victim = rng.choice(workers)
        victim.kill()
        victim.start()

    async def stored() -> bool:
        return await mongo_db["messages"].count_documents({}) >= MESSAGES

    await wait_for(stored, timeout=240, what=f"{MESSAGES} messages stored")
    print(f"worker failure: all stored {time.monotonic() - started:.1f}s after the backlog")
    assert await mongo_db["messages"].count_documents({}) == MESSAGES
    await assert_counts_are_truth(mongo_db, {m.user_id for m in messages}, MESSAGES)

    # At least once per message (a killed batch may emit its events again).
    records = await consume_all(settings, topics.user_events, want=MESSAGES, timeout=60)
    announced = {
        orjson.loads(r.value)["data"]["message"]["id"]
        for r in records
        if orjson.loads(r.value)["type"] == "new_message"
    }
    assert announced == {m.id for m in messages}
