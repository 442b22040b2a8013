"""Two `hub streams` workers share the partitions while messages keep arriving; one is
SIGKILLed mid-way and the other takes its partitions over: counts exact, nothing stored
twice, and the projections equal the store's own count."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import create_client
from hubcore.settings import Settings
from schemas import RawMessage
from tests.streams_helpers import (
    Worker,
    assert_counts_are_ground_truth,
    produce,
    raw_message,
    wait_for,
    wait_ready,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 12
MESSAGES = 3000
CHUNK = 100


async def test_one_of_two_workers_killed_under_load(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    workers = [
        Worker(
            worker_env(
                settings,
                tmp_path / name,
                HUB_STREAMS_SESSION_TIMEOUT="6",
                HUB_STREAMS_BATCH_SIZE="100",
            ),
            tmp_path / f"{name}.log",
        )
        for name in ("a", "b")
    ]
    rng = random.Random(7)
    messages: list[RawMessage] = [
        raw_message(f"pair-{n % USERS}", n, chat=f"chat-{rng.randrange(5)}")
        for n in range(MESSAGES)
    ]
    client = create_client(settings.mongo_url)
    db = client[settings.mongo_db]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await wait_ready(worker, timeout=90)

        async def load() -> None:
            # A steady stream, with one message in ten repeated (a platform retry).
            for start in range(0, MESSAGES, CHUNK):
                chunk = messages[start : start + CHUNK]
                chunk += chunk[::10]
                await produce(
                    settings,
                    topics.raw_messages,
                    [(m.user_id.encode(), m.to_json()) for m in chunk],
                )
                await asyncio.sleep(0.2)

        producing = asyncio.create_task(load())
        victim, survivor = workers[1], workers[0]

        async def victim_busy() -> bool:
            stored = await db["messages"].count_documents({})
            return victim.batches() >= 3 and stored < MESSAGES // 2

        await wait_for(victim_busy, timeout=60, what="the victim to be mid-way")
        victim.kill()
        await producing

        async def all_stored() -> bool:
            return await db["messages"].count_documents({}) >= MESSAGES

        await wait_for(all_stored, timeout=180, what="every message stored")
        assert await db["messages"].count_documents({}) == MESSAGES  # none twice
        assert survivor.proc is not None and survivor.proc.poll() is None
        expected: dict[str, dict[str, int]] = {}
        for m in messages:
            per_user = expected.setdefault(m.user_id, {})
            per_user[m.conversation_id] = per_user.get(m.conversation_id, 0) + 1
        await assert_counts_are_ground_truth(db, expected)
    finally:
        for worker in workers:
            worker.stop()
        await client.drop_database(settings.mongo_db)
        await client.close()
