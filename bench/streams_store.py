"""Measure the Faust table store choice: live throughput and restart (recovery) time.

Runs real `hub streams` workers against the servers named by HUB_KAFKA_BOOTSTRAP and
HUB_MONGO_URL, once per store (`memory`, `rocksdb`; the latter needs `rocksdict`):

    PYTHONPATH=. .venv/bin/python bench/streams_store.py --messages 20000 --users 2000

and, alone, how long a worker takes to restore a table of users and conversations:

    PYTHONPATH=. .venv/bin/python bench/streams_store.py --recovery-only --users 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.mongo import create_client
from hubcore.settings import Settings
from streams.batch.records import SourceRecord
from streams.batch.state import ConversationState, UserState, conversation_key, user_part
from streams.table.table import key_partition
from streams.worker import changelog_topic
from tests.streams_helpers import Worker, produce, raw_message, wait_for, wait_ready, worker_env


def _batches(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        start = line.find("{")
        if start >= 0 and '"event": "batch"' in line:
            out.append(json.loads(line[start:]))
    return out


async def measure(store: str, messages: int, users: int) -> dict[str, float]:
    """One store: produce, process, then restart and time the recovery."""
    settings = Settings(
        _env_file=None,
        topic_namespace="bench." + uuid.uuid4().hex[:8],
        mongo_db="bench_" + uuid.uuid4().hex[:8],
    )
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    records = [
        (f"u{i % users}".encode(), raw_message(f"u{i % users}", i).to_json())
        for i in range(messages)
    ]
    await produce(settings, topics.raw_messages, records)
    tmp = Path(tempfile.mkdtemp())
    worker = Worker(worker_env(settings, tmp, HUB_STREAMS_STORE=store), tmp / "worker.log")
    client = create_client(settings.mongo_url)
    db = client[settings.mongo_db]
    try:
        worker.start()
        await wait_ready(worker, timeout=120)
        started = time.perf_counter()

        async def done() -> bool:
            return await db["messages"].count_documents({}) >= messages

        await wait_for(done, timeout=600, what="all messages")
        elapsed = time.perf_counter() - started
        batches = _batches(worker.output())
        busy = sum(float(str(b["ms"])) for b in batches) / 1000
        worker.stop()
        # Restart: the table is recovered from the changelog (memory: all of it;
        # rocksdb: only what the local files lack).
        restart = time.perf_counter()
        worker.start()
        await wait_ready(worker, timeout=120)
        recovery = time.perf_counter() - restart
        return {
            "messages": messages,
            "users": users,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(messages / elapsed),
            "batch_busy_s": round(busy, 2),
            "restart_to_ready_s": round(recovery, 2),
        }
    finally:
        worker.stop()
        await client.drop_database(settings.mongo_db)
        await client.close()


def _table_values(users: int, conversations: int) -> list[tuple[bytes, bytes]]:
    """The table of `users` users with `conversations` conversations each, as the worker
    writes it: a totals value per user, a state per (user, conversation)."""
    out = []
    for u in range(users):
        user = f"u{u}"
        state = UserState()
        for c in range(conversations):
            message = raw_message(user, u * conversations + c, chat=f"chat-{c}")
            record = SourceRecord("bench.raw-messages", 0, u * conversations + c, None, b"")
            conv = ConversationState()
            conv.unread = 1
            conv.advance(message.to_message("unread"), message.conversation_title)
            conv.mark_applied(record)
            state.add(message.platform, +1)
            state.mark_applied(record)
            out.append((conversation_key(user, message.conversation_id), conv.to_value()))
        out.append((user.encode(), state.to_value()))
    return [(key, orjson.dumps(value)) for key, value in out]


async def recovery(store: str, users: int, conversations: int) -> dict[str, float]:
    """Start and restart time of a worker whose table holds `users` x (`conversations` +
    1) keys (their changelog records, each key once, on its user's partition)."""
    settings = Settings(
        _env_file=None,
        topic_namespace="bench." + uuid.uuid4().hex[:8],
        mongo_db="bench_" + uuid.uuid4().hex[:8],
    )
    topic = changelog_topic(settings)
    await ensure_topics(settings, {topic: {"cleanup.policy": "compact"}})
    values = _table_values(users, conversations)
    producer = create_producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                key=key,
                value=value,
                partition=key_partition(user_part(key), settings.topic_partitions),
            )
            for key, value in values
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    tmp = Path(tempfile.mkdtemp())
    worker = Worker(worker_env(settings, tmp, HUB_STREAMS_STORE=store), tmp / "worker.log")
    times = []
    try:
        for _ in range(2):
            started = time.perf_counter()
            worker.start()
            await wait_ready(worker, timeout=600)
            times.append(round(time.perf_counter() - started, 2))
            worker.stop()
    finally:
        worker.stop()
    return {"table_keys": len(values), "first_start_s": times[0], "restart_s": times[1]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--stores", default="memory,rocksdb")
    parser.add_argument("--conversations", type=int, default=50, help="per user, in the table")
    parser.add_argument("--recovery-only", action="store_true")
    args = parser.parse_args()
    for store in args.stores.split(","):
        if not args.recovery_only:
            print(store, await measure(store, args.messages, args.users), flush=True)
        print(store, await recovery(store, args.users, args.conversations), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
