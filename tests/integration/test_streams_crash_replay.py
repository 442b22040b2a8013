"""SIGKILL the worker in the middle of thousands of messages and of mark-read commands, then
restart it: counts equal the ground truth. Then replay the history: the same state hash."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from schemas import RawMessage
from tests.resources import SessionResources
from tests.streams_helpers import (
    Worker,
    assert_counts_are_ground_truth,
    mark_read,
    produce,
    raw_message,
    run_hub,
    wait_for,
    wait_ready,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 12
MESSAGES = 3000
KILLS = 2
READS_PER_USER = 200
READS_PER_COMMAND = 4


@dataclass
class Scenario:
    settings: Settings
    env: dict[str, str]
    worker: Worker
    db: AsyncDatabase[Document]
    messages: list[RawMessage] = field(default_factory=list)
    read_ids: set[str] = field(default_factory=set)

    def expected_unread(self) -> dict[str, dict[str, int]]:
        """user -> conversation -> unread, from what the test produced."""
        out: dict[str, dict[str, int]] = {}
        for m in {m.id: m for m in self.messages}.values():
            if m.id not in self.read_ids:
                per_user = out.setdefault(m.user_id, {})
                per_user[m.conversation_id] = per_user.get(m.conversation_id, 0) + 1
        return out


@pytest.fixture(scope="module")
async def scenario(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scenario]:
    settings = resources.settings()
    tmp: Path = tmp_path_factory.mktemp("crash")
    # The shortest session the broker allows: a killed worker's partitions move on sooner.
    # Batches of 100 records: many batches, so that every kill lands in the middle of them.
    env = worker_env(settings, tmp, HUB_STREAMS_SESSION_TIMEOUT="6", HUB_STREAMS_BATCH_SIZE="100")
    client = create_client(settings.mongo_url)
    worker = Worker(env, tmp / "worker.log")
    yield Scenario(settings, env, worker, client[settings.mongo_db])
    worker.stop()
    await client.drop_database(settings.mongo_db)
    await client.close()


async def _count(db: AsyncDatabase[Document], query: Document) -> int:
    return await db["messages"].count_documents(query)


async def _kill_mid_way(s: Scenario, query: Document, total: int) -> list[int]:
    """Start the worker, SIGKILL it each time `query` matched some more documents (while
    work remains), `KILLS` times; leave it running at the end. Returns the counts seen."""
    seen = []
    for _ in range(KILLS):
        s.worker.start()
        await wait_ready(s.worker)
        before = await _count(s.db, query)

        async def progressed(before: int = before) -> int:
            n = await _count(s.db, query)
            return n if n > before else 0

        seen.append(await wait_for(progressed, what="progress before the kill"))
        s.worker.kill()
    s.worker.start()
    await wait_ready(s.worker)

    async def done() -> bool:
        return await _count(s.db, query) >= total

    await wait_for(done, timeout=120, what=f"{total} documents for {query}")
    return seen


async def _assert_counts_are_ground_truth(s: Scenario) -> None:
    await assert_counts_are_ground_truth(s.db, s.expected_unread())


async def test_crash_mid_batch_counts_equal_ground_truth(scenario: Scenario) -> None:
    s = scenario
    await ensure_topics(s.settings)
    topics = Topics.from_settings(s.settings)
    rng = random.Random(4)
    for n in range(MESSAGES):
        user = f"crash-{n % USERS}"
        s.messages.append(raw_message(user, n, chat=f"chat-{rng.randrange(4)}"))
    # Platform retries: one message in ten arrives twice, some much later.
    repeats = [s.messages[i] for i in range(0, MESSAGES, 10)]
    records = list(s.messages)
    for m in repeats:
        records.insert(rng.randrange(len(records) + 1), m)
    await produce(
        s.settings, topics.raw_messages, [(m.user_id.encode(), m.to_json()) for m in records]
    )
    distinct = {m.id for m in s.messages}

    seen = await _kill_mid_way(s, {}, len(distinct))
    assert all(0 < n < len(distinct) for n in seen), f"kills were not mid-way: {seen}"
    assert await _count(s.db, {}) == len(distinct)  # stored once each
    await _assert_counts_are_ground_truth(s)

    # Mark-read commands (as the gateway issues them: explicit ids of stored messages),
    # with kills in the middle of them too.
    s.worker.stop()
    commands = []
    by_user: dict[str, list[str]] = {}
    for m in s.messages:
        by_user.setdefault(m.user_id, []).append(m.id)
    # Thousands of reads in a few hundred commands: enough batches (of 100, see the
    # fixture) that the kills land mid-way, even on a fast store.
    for user, ids in sorted(by_user.items()):
        for i in range(0, READS_PER_USER, READS_PER_COMMAND):
            part = ids[i : i + READS_PER_COMMAND]
            s.read_ids.update(part)
            commands.append(mark_read(user, part, f"{user}-cmd-{i}"))
    # A repeat of an earlier command changes nothing.
    commands.append(commands[0])
    await produce(
        s.settings, topics.commands, [(c.user_id.encode(), c.to_json()) for c in commands]
    )
    seen = await _kill_mid_way(s, {"status": "read"}, len(s.read_ids))
    assert all(0 < n < len(s.read_ids) for n in seen), f"kills were not mid-way: {seen}"
    await _assert_counts_are_ground_truth(s)


async def test_replay_reproduces_state_hash(scenario: Scenario) -> None:
    s = scenario
    if not s.messages:
        pytest.skip("needs the history the crash test produced")
    refused = run_hub(s.env, "replay")
    assert refused.returncode == 1 and "running" in refused.stderr

    s.worker.stop()
    before = run_hub(s.env, "state-hash")
    assert before.returncode == 0, before.stderr
    digest = before.stdout.strip()
    assert len(digest) == 64 and before.stdout.count("\n") == 1

    replayed = run_hub(s.env, "replay")
    assert replayed.returncode == 0, replayed.stderr
    summary = replayed.stdout.strip()
    assert summary.startswith("replayed "), summary
    # Every raw record (repeats included) and every command was read again.
    assert int(summary.split()[1]) >= MESSAGES + MESSAGES // 10
    assert "events/s" in summary
    after = run_hub(s.env, "state-hash")
    assert after.stdout.strip() == digest

    # Workers start from the rebuilt table: one more message counts exactly once.
    extra = raw_message("crash-0", MESSAGES + 1, chat="chat-new")
    s.messages.append(extra)
    s.worker.start()
    await wait_ready(s.worker)
    topics = Topics.from_settings(s.settings)
    await produce(s.settings, topics.raw_messages, [(b"crash-0", extra.to_json())])

    async def stored() -> int:
        return await _count(s.db, {"_id": extra.id})

    await wait_for(stored, what="the message after the replay")
    await _assert_counts_are_ground_truth(s)
