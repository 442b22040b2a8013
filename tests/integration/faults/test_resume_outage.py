"""Resume during a broker outage longer than the read may stall: `resume_unavailable`,
never a partial history reported as complete, nor a wait for the broker's return.

Runs against a private broker it stops and restarts (never the shared one); the outage
starts once the catch-up read is under way, with most of the history still on the broker
(a consumer buffers about one fetch per partition, `max_partition_fetch_bytes`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import gateway.resume as resume_module
from gateway.frames import Cursor
from gateway.pump import standalone_consumer
from gateway.resume import UNAVAILABLE, ResumeService
from hubcore.kafka import ensure_topics
from hubcore.settings import Settings
from tests.integration.gateway_kit import new_message, produce
from tests.local_servers import PrivateKafka, private_kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

RECORDS = 30_000  # many fetches' worth (random ids defeat lz4): the outage lands mid-read
EVERY = 100  # one of alice's events per this many records (the rest are bob's)
STALL_LIMIT = 3.0  # seconds the read waits for a record (10 in production)
OUTAGE = 6.0  # seconds the broker stays down: longer than that


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    with private_kafka(tmp_path) as broker:
        yield broker


class _FirstBatchGate:
    """Holds the resume's read after its first non-empty fetch until the broker is down."""

    def __init__(self) -> None:
        self.read_started = asyncio.Event()
        self.broker_down = asyncio.Event()

    def wrap(self, make: Callable[..., AIOKafkaConsumer]) -> Callable[..., AIOKafkaConsumer]:
        def made(*args: Any, **kwargs: Any) -> AIOKafkaConsumer:
            consumer = make(*args, **kwargs)
            getmany = consumer.getmany

            async def gated(*tps: TopicPartition, **kw: Any) -> Any:
                batch = await getmany(*tps, **kw)
                if batch and not self.read_started.is_set():
                    self.read_started.set()
                    await self.broker_down.wait()
                return batch

            consumer.getmany = gated
            return consumer

        return made


async def test_resume_across_an_outage_is_complete_or_unavailable(
    kafka: PrivateKafka,
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings_factory(kafka_bootstrap=kafka.bootstrap, topic_partitions=1)
    await ensure_topics(s)
    events = [
        new_message("alice" if n % EVERY == 0 else "bob", n, conversation_id=uuid.uuid4().hex * 4)
        for n in range(RECORDS)
    ]
    cursors = await produce(s, events)
    alice = [c for c, e in zip(cursors, events, strict=True) if e.user_id == "alice"]
    expected = alice[1:]
    end = int(cursors[-1].split("-")[1]) + 1

    gate = _FirstBatchGate()
    make = gate.wrap(standalone_consumer)
    monkeypatch.setattr(resume_module, "standalone_consumer", make)
    monkeypatch.setattr(resume_module, "_STALL_LIMIT", STALL_LIMIT)
    service = ResumeService(s)
    try:
        start = Cursor(0, int(alice[0].split("-")[1]))
        replay = asyncio.create_task(service.replay(b"alice", start, end))
        await asyncio.wait_for(gate.read_started.wait(), 60)
        await asyncio.to_thread(kafka.stop)
        gate.broker_down.set()
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(kafka.start)
        outcome = await asyncio.wait_for(replay, 120)
    finally:
        await service.close()

    got = [event.cursor for event in outcome.events]
    # The read stalled for STALL_LIMIT within the OUTAGE: it gave up, and said so.
    assert outcome.error is not None, f"resume waited out the outage ({len(got)} events)"
    assert outcome.error[0] == UNAVAILABLE and got == []
    assert len(expected) == RECORDS // EVERY - 1  # the history it could not give in full
