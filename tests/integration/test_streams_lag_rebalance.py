"""A worker's per-partition lag series follow its assignment on the real broker: a second
worker joins and the partitions it takes leave the first one's /metrics; it leaves and
they come back. (The values themselves: tests/unit/test_streams_positions.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from hubcore.kafka import Topics, ensure_topics
from hubcore.settings import Settings
from tests.streams_helpers import Worker, produce, raw_message, wait_for, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAG = re.compile(r'^hub_streams_consumer_lag\{partition="\d+",topic="[^"]+"\} (\S+)$', re.M)
SERIES = re.compile(
    r'^hub_streams_(consumer_lag|commit_stalled_seconds)\{partition="(\d+)",topic="([^"]+)"\} '
    r"(\S+)$",
    re.M,
)


async def series(worker: Worker) -> dict[str, set[tuple[str, int]]]:
    """Per gauge, the (topic, partition) series the worker's /metrics has now."""
    port = worker.env["HUB_STREAMS_WEB_PORT"]
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    found: dict[str, set[tuple[str, int]]] = {
        "consumer_lag": set(),
        "commit_stalled_seconds": set(),
    }
    for gauge, partition, topic, _ in SERIES.findall(text):
        found[gauge].add((topic, int(partition)))
    return found


async def test_revoked_partitions_leave_the_metrics(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    every = {
        (topic, p)
        for topic in (topics.raw_messages, topics.commands)
        for p in range(settings.topic_partitions)
    }
    assert settings.topic_partitions >= 2
    # A record on every raw partition, so each has an end offset the workers have fetched.
    messages = [raw_message(f"lag-{n}", n) for n in range(4 * settings.topic_partitions)]
    await produce(
        settings, topics.raw_messages, [(m.user_id.encode(), m.to_json()) for m in messages]
    )
    a, b = (
        Worker(
            worker_env(settings, tmp_path / name, HUB_STREAMS_SESSION_TIMEOUT="6"),
            tmp_path / f"{name}.log",
        )
        for name in ("a", "b")
    )
    try:
        a.start()
        await wait_ready(a, timeout=90)

        async def a_has(expected: set[tuple[str, int]]) -> bool:
            got = await series(a)
            return got["consumer_lag"] == expected and got["commit_stalled_seconds"] == expected

        # Raw partitions have been fetched; the idle commands topic may answer later.
        await wait_for(lambda: a_has(every), timeout=60, what="worker a reporting every partition")

        async def a_caught_up() -> bool:
            port = a.env["HUB_STREAMS_WEB_PORT"]
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
            return set(LAG.findall(text)) == {"0.0"}

        # Processed and committed: nothing past a's committed offsets.
        await wait_for(a_caught_up, timeout=60, what="worker a committing every record")

        b.start()
        await wait_ready(b, timeout=90)

        async def split() -> bool:
            mine, theirs = await series(a), await series(b)
            return (
                bool(mine["consumer_lag"])
                and bool(theirs["consumer_lag"])
                and mine["consumer_lag"] | theirs["consumer_lag"] == every
                and not mine["consumer_lag"] & theirs["consumer_lag"]
                and mine["commit_stalled_seconds"] == mine["consumer_lag"]
            )

        await wait_for(split, timeout=60, what="the partitions split between a and b")
        taken = (await series(b))["consumer_lag"]
        assert not (await series(a))["consumer_lag"] & taken

        b.stop()
        await wait_for(lambda: a_has(every), timeout=60, what="worker a owning every partition")
    finally:
        a.stop()
        b.stop()
