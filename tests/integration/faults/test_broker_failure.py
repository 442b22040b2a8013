"""SIGKILL the Kafka node leading raw-messages partitions while webhooks arrive at a
steady rate, then restart it: every webhook answered 200 is stored exactly once, unread
counts equal the store's truth, and during the election a webhook gets 200 or 503.

A private 3-node cluster of this test's own (topics RF 3, min.insync.replicas 2), the
connectors app in-process and a `hub streams` worker as a real process.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import Account
from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import Harness, running_app, signed_delivery
from tests.local_servers import PrivateCluster, private_cluster
from tests.streams_helpers import Worker, ground_truth, wait_for, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

RATE = 10  # webhooks a second
SECONDS = 24  # of sending
KILL_AT, RESTART_AT = 6.0, 14.0  # seconds into the run
RETRY_FOR = 60.0  # a platform retries a 503 for this long


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    with private_cluster(Path(tmp_path_factory.mktemp("cluster"))) as running:
        yield running


class Sender:
    """Webhooks at a steady rate; a 503 is retried as a platform would (same body)."""

    def __init__(self, app: Harness, account: Account) -> None:
        self.app, self.account = app, account
        self.acked: Counter[str] = Counter()  # message id -> times answered 200
        self.statuses: Counter[int] = Counter()
        self.answers: list[tuple[float, int]] = []  # (sent at, status) of first attempts

    async def deliver(self, n: int) -> None:
        raw, headers = signed_delivery("generic", self.account, n)
        deadline = time.monotonic() + RETRY_FOR
        first = True
        while True:
            sent = time.monotonic()
            response = await self.app.post("generic", self.account.id, raw, headers)
            self.statuses[response.status_code] += 1
            if first:
                self.answers.append((sent, response.status_code))
                first = False
            assert response.status_code in (200, 503), response.text
            if response.status_code == 200:
                self.acked.update(response.json()["messageIds"])
                return
            assert time.monotonic() < deadline, "503 for longer than a platform retries"
            await asyncio.sleep(0.5)


async def _leader_of_most(settings: Settings) -> int:
    """The node leading the most raw-messages partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [topic] = await admin.describe_topics([Topics.from_settings(settings).raw_messages])
    finally:
        await admin.close()
    leaders = Counter(int(p["leader"]) for p in topic["partitions"])
    return leaders.most_common(1)[0][0]


@pytest.fixture
async def worker(
    cluster: PrivateCluster, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Worker]]:
    s = settings.model_copy(
        update={"kafka_bootstrap": cluster.bootstrap, "kafka_request_timeout": 5.0}
    )
    assert await ensure_topics(s) == 3
    env = worker_env(s, tmp_path, HUB_STREAMS_SESSION_TIMEOUT="6")
    running = Worker(env, tmp_path / "worker.log")
    running.start()
    try:
        await wait_ready(running, timeout=120)
        yield s, running
    finally:
        running.stop()


async def test_leader_killed_under_webhooks_loses_and_doubles_nothing(
    cluster: PrivateCluster,
    worker: tuple[Settings, Worker],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s, _ = worker
    async with running_app(s, mongo_db) as app:
        account = await app.account("generic")
        sender = Sender(app, account)
        victim = await _leader_of_most(s)
        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        killed_at = restarted_at = 0.0
        for n in range(RATE * SECONDS):
            elapsed = time.monotonic() - started
            if not killed_at and elapsed >= KILL_AT:
                await asyncio.to_thread(cluster.kill, victim)
                killed_at = time.monotonic()
            if killed_at and not restarted_at and elapsed >= RESTART_AT:
                await asyncio.to_thread(cluster.start, victim)
                restarted_at = time.monotonic()
            tasks.append(asyncio.create_task(sender.deliver(n)))
            await asyncio.sleep(max(0.0, started + (n + 1) / RATE - time.monotonic()))
        await asyncio.gather(*tasks)

    # Every acknowledged message, once; nothing else.
    assert sum(sender.acked.values()) == len(sender.acked) == RATE * SECONDS
    ids = list(sender.acked)

    async def stored() -> bool:
        return await mongo_db["messages"].count_documents({}) >= len(ids)

    await wait_for(stored, timeout=120, what="every acknowledged message stored")
    assert await mongo_db["messages"].count_documents({}) == len(ids)
    assert await mongo_db["messages"].count_documents({"_id": {"$in": ids}}) == len(ids)

    async def counted() -> bool:
        unread = await mongo_db["unread"].find_one({"_id": "alice"})
        return unread is not None and unread["total"] == len(ids)

    await wait_for(counted, timeout=60, what="unread counts to settle")
    truth = await ground_truth(mongo_db, "alice")
    unread = await mongo_db["unread"].find_one({"_id": "alice"})
    assert unread is not None and unread["byConversation"] == truth
    async for conv in mongo_db["conversations"].find({"userId": "alice"}):
        assert conv["unreadCount"] == truth.get(conv["_id"], 0)

    # The election: how long after the kill first attempts kept failing.
    failing = [sent - killed_at for sent, status in sender.answers if status != 200]
    print(
        f"broker failure: statuses {dict(sender.statuses)}, first-attempt 503s "
        f"{len(failing)} spanning {max(failing, default=0):.1f}s after the kill"
    )
