"""The pump's long fetch wait costs no latency: it takes every fetched record at once, so
aiokafka's next fetch covers all partitions and returns as soon as any has a record.

Had a fetch left out the partition just read (as it does for a consumer that keeps
records unconsumed), the next event of that partition would wait out the whole
`FETCH_MAX_WAIT_MS`. Real broker; events of one user, so one partition, others idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import cast

import pytest

from gateway.connection import WsConnection
from gateway.pump import FETCH_MAX_WAIT_MS, EventPump
from gateway.registry import Registry
from hubcore.kafka import Topics, create_producer
from hubcore.settings import Settings
from schemas.frames import Event
from tests.integration.gateway_kit import DEADLINE, new_message

pytestmark = pytest.mark.integration


class Listener:
    """Stands in for a connection: notes when each event reaches it."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()

    def deliver(self, event: Event) -> None:
        self.arrived.put_nowait((time.monotonic(), event))


async def test_the_next_event_of_a_partition_does_not_wait_out_the_fetch(
    settings: Settings,
) -> None:
    registry = Registry()
    listener = Listener()
    registry.ws[b"alice"] = [cast(WsConnection, listener)]
    pump = EventPump(settings, registry)
    running = asyncio.create_task(pump.run())
    producer = create_producer(settings)
    try:
        await asyncio.wait_for(pump.ready.wait(), DEADLINE)
        await producer.start()
        topic = Topics.from_settings(settings).user_events
        delays = []
        for n in range(12):
            sent = time.monotonic()
            event = new_message("alice", n)
            await producer.send_and_wait(topic, key=b"alice", value=event.to_json())
            arrived, delivered = await asyncio.wait_for(listener.arrived.get(), DEADLINE)
            assert delivered.data["message"]["id"] == event.data.message.id
            delays.append(arrived - sent)
    finally:
        await producer.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    # Held fetches would put every delay near the full wait.
    assert statistics.median(delays) < FETCH_MAX_WAIT_MS / 1000 / 4, delays
