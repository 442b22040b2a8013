"""Stop the store for 30 s while webhooks arrive: ingest keeps answering 200 (Kafka holds
the messages), the streams worker backs off, and once the store is back the backlog
drains - every message stored once, counts exact.

A private FerretDB of this test's own (never the shared one), the shared broker, the
connectors app in-process and a `hub streams` worker as a real process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import ensure_topics
from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from tests.integration.connectors.harness import running_app
from tests.integration.faults.kit import Sender, assert_stored_once
from tests.local_servers import PrivateStore, private_store
from tests.streams_helpers import Worker, wait_for, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

RATE = 10  # webhooks a second
SECONDS = 45  # of sending
STOP_AT, OUTAGE = 8.0, 30.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PrivateStore]:
    with private_store(tmp_path) as running:
        yield running


@pytest.fixture
async def db(store: PrivateStore, settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(store.url)
    yield client[settings.mongo_db]
    await client.close()


async def _caught_up(db: AsyncDatabase[Document], backlog: int, events: dict[str, float]) -> None:
    async def stored() -> bool:
        return await db["messages"].count_documents({}) >= backlog

    await wait_for(stored, timeout=120, what="the backlog stored")
    events["drained"] = time.monotonic()


async def test_store_outage_keeps_ingest_up_and_loses_nothing(
    store: PrivateStore,
    db: AsyncDatabase[Document],
    settings: Settings,
    tmp_path: Path,
) -> None:
    s = settings.model_copy(update={"mongo_url": store.url})
    await ensure_topics(s)
    worker = Worker(worker_env(s, tmp_path), tmp_path / "worker.log")
    worker.start()
    events: dict[str, float] = {}
    try:
        await wait_ready(worker, timeout=120)

        def faults(elapsed: float) -> None:
            if "stopped" not in events and elapsed >= STOP_AT:
                store.stop()
                events["stopped"] = time.monotonic()
            if "stopped" in events and "started" not in events and elapsed >= STOP_AT + OUTAGE:
                store.start()
                events["started"] = time.monotonic()
                backlog = len(sender.acked)  # all acknowledged while the store was down
                catching_up.append(asyncio.create_task(_caught_up(db, backlog, events)))

        catching_up: list[asyncio.Task[None]] = []
        async with running_app(s, db) as app:
            sender = Sender(app, await app.account("generic"))
            await sender.run(RATE * SECONDS, RATE, faults)
        await asyncio.gather(*catching_up)
        # Kafka held every message while the store was down: no webhook was refused.
        assert dict(sender.statuses) == {200: RATE * SECONDS}
        assert sum(sender.acked.values()) == len(sender.acked) == RATE * SECONDS
        await assert_stored_once(db, list(sender.acked), "alice")
        drained = events["drained"] - events["started"]
        print(f"store outage: the backlog was stored {drained:.1f}s after the store was back")
        assert worker.proc is not None and worker.proc.poll() is None, "the worker gave up"
    finally:
        worker.stop()
