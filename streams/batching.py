"""Batches of stream events without a fixed wait: a batch starts as soon as records are there.

Faust's `take_events(max, within)` yields when `max` events arrived or `within` passed, so at
low rates every record waits up to `within`; and while a batch is being processed it stops
buffering. Here the background fill never stops (up to `max` events), and the loop takes
whatever is buffered the moment it is free: one record at a time when traffic is light,
batches that grow with the work that piled up while the previous one was in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.types import ChannelT, EventT, StreamT


async def take_ready(stream: StreamT[Any], max_: int) -> AsyncIterator[list[EventT[Any]]]:
    """Yield the buffered events (1 to `max_`) whenever there are some; each yielded event
    is acknowledged to the stream after the loop body returns (hold a reference with
    `message.incref()` to keep it unacknowledged for longer)."""
    impl = cast(Any, stream)
    events: list[EventT[Any]] = []
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def add_to_buffer(value: Any) -> Any:
        # Backpressure: the stream's own queue holds what does not fit yet.
        while len(events) >= max_:
            room.clear()
            await impl.wait(room)
        event = impl.current_event
        if event is None:
            raise RuntimeError("take_ready found current_event is None")
        events.append(event)
        ready.set()
        return value

    impl.enable_acks = False
    impl.add_processor(add_to_buffer)
    impl._enable_passive(cast(ChannelT[Any], aiter(impl.channel)))
    while not impl.should_stop:
        await impl.wait_for_stopped(ready)
        if not events:
            continue
        batch = events[:]
        events.clear()
        ready.clear()
        room.set()
        try:
            yield batch
        finally:
            for event in batch:
                await impl.ack(event)
