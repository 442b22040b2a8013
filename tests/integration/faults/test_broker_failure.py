"""SIGKILL the Kafka node leading raw-messages partitions while webhooks arrive at a
steady rate, then restart it: every webhook answered 200 is stored exactly once, unread
counts equal the store's truth, and during the election a webhook gets 200 or 503.

A private 3-node cluster of this test's own (topics RF 3, min.insync.replicas 2), the
connectors app in-process and a `hub streams` worker as a real process.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import running_app
from tests.integration.faults.kit import Sender, assert_stored_once
from tests.local_servers import PrivateCluster, private_cluster
from tests.streams_helpers import Worker, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

RATE = 10  # webhooks a second
SECONDS = 24  # of sending
KILL_AT, RESTART_AT = 6.0, 14.0  # seconds into the run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    with private_cluster(Path(tmp_path_factory.mktemp("cluster"))) as running:
        yield running


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
    events: dict[str, float] = {}
    victim = await _leader_of_most(s)

    def faults(elapsed: float) -> None:
        if "killed" not in events and elapsed >= KILL_AT:
            cluster.kill(victim)
            events["killed"] = time.monotonic()
        if "killed" in events and "restarted" not in events and elapsed >= RESTART_AT:
            cluster.start(victim)
            events["restarted"] = time.monotonic()

    async with running_app(s, mongo_db) as app:
        sender = Sender(app, await app.account("generic"))
        await sender.run(RATE * SECONDS, RATE, faults)

    # Every acknowledged message, once; nothing else.
    assert sum(sender.acked.values()) == len(sender.acked) == RATE * SECONDS
    await assert_stored_once(mongo_db, list(sender.acked), "alice")

    # The election: how long after the kill first attempts kept failing.
    failing = [sent - events["killed"] for sent, status in sender.first if status != 200]
    print(
        f"broker failure: statuses {dict(sender.statuses)}, first-attempt 503s "
        f"{len(failing)} spanning {max(failing, default=0):.1f}s after the kill"
    )
