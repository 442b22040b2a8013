"""The hand-over of source records from Faust's consumer to the batch loop, a fetch at a time.

`SourceBuffer` with a real event loop and Faust's real flow control; `_take` with Faust's
real `ConsumerMessage` and a stand-in consumer that records what is tracked and acked.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from faust.types.tuples import ConsumerMessage
from mode.utils.queues import FlowControlEvent

from streams.consumer import SourceBuffer
from streams.worker import _ack, _take

TOPIC = "raw-messages"


def message(offset: int, generation: int = 1) -> ConsumerMessage:
    return ConsumerMessage(
        TOPIC, 0, offset, 0.0, 0, None, b"u1", b"{}", None, generation_id=generation
    )


class Consumer:
    """Records tracked and finally acknowledged messages (as Faust's consumer counts them)."""

    def __init__(self) -> None:
        self.tracked: list[int] = []
        self.acked: list[int] = []

    def track_message(self, msg: ConsumerMessage) -> None:
        self.tracked.append(msg.offset)

    def ack(self, msg: ConsumerMessage) -> bool:
        msg.acked = True  # as Faust's consumer marks it
        self.acked.append(msg.offset)
        return True


def app(generation: int = 1, *, flowing: bool = True) -> Any:
    flow = FlowControlEvent(initially_suspended=not flowing)
    return SimpleNamespace(
        flow_control=flow, consumer_generation_id=generation, consumer=Consumer()
    )


async def test_a_batch_takes_what_is_there_at_once_oldest_first_at_most_max() -> None:
    buffer = SourceBuffer([TOPIC], limit=4)
    waiting = asyncio.ensure_future(buffer.take(3))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing fetched yet
    buffer.put([message(0)])
    assert [m.offset for m in await waiting] == [0]  # no wait for more
    buffer.put([message(1), message(2)])
    buffer.put([message(3), message(4)])
    assert [m.offset for m in await buffer.take(3)] == [1, 2, 3]
    assert [m.offset for m in await buffer.take(3)] == [4]


async def test_the_consumer_waits_for_room_past_the_limit() -> None:
    buffer = SourceBuffer([TOPIC], limit=2)
    buffer.put([message(0)])
    assert not buffer.full
    buffer.put([message(1), message(2)])  # one fetch may overshoot
    assert buffer.full
    room = asyncio.ensure_future(buffer.room())
    await asyncio.sleep(0)
    assert not room.done()
    await buffer.take(1)
    await asyncio.sleep(0)
    assert not room.done()  # still at the limit
    await buffer.take(1)
    await asyncio.wait_for(room, 1.0)
    assert len(buffer) == 1 and not buffer.full


async def test_flow_control_resuming_clears_the_buffer_as_faust_clears_its_streams() -> None:
    flow = FlowControlEvent(initially_suspended=False)
    buffer = SourceBuffer([TOPIC], limit=1)
    flow.manage_queue(cast(Any, buffer))
    buffer.put([message(0), message(1)])
    flow.suspend()
    flow.resume()
    assert len(buffer) == 0
    await asyncio.wait_for(buffer.room(), 1.0)  # the consumer is not left waiting
    buffer.put([message(2)])
    assert [m.offset for m in await buffer.take(5)] == [2]


def test_taken_records_are_tracked_and_acknowledged_once_their_batch_is_done() -> None:
    current = app(generation=2)
    taken = _take(current, [message(0, generation=2), message(1, generation=2)])
    assert [m.offset for m in taken] == [0, 1]
    assert current.consumer.tracked == [0, 1]
    assert [m.refcount for m in taken] == [1, 1]  # held until the sink has written
    assert current.consumer.acked == []
    _ack(current, taken)
    assert current.consumer.acked == [0, 1]
    _ack(current, taken)  # a second ack changes nothing
    assert current.consumer.acked == [0, 1]


def test_records_of_an_earlier_generation_or_taken_while_flow_is_stopped_are_dropped() -> None:
    current = app(generation=3)
    taken = _take(current, [message(0, generation=2), message(1, generation=3)])
    assert [m.offset for m in taken] == [1]
    assert current.consumer.tracked == [1]  # the dropped one is fetched again, untracked
    stopped = app(generation=3, flowing=False)
    assert _take(stopped, [message(2, generation=3)]) == []
    assert stopped.consumer.tracked == []
