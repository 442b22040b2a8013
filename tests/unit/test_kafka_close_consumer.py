"""`close_consumer`: a consumer being dropped is stopped without passing on aiokafka's
stray CancelledError, but a cancellation of the caller still goes through."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from hubcore.kafka import close_consumer


class _Stops:
    """Stands for a consumer whose `stop()` raises what aiokafka's fetcher.close() can."""

    def __init__(self, error: BaseException | None = None, block: bool = False) -> None:
        self.error = error
        self.block = block
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True
        if self.block:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error


def _consumer(stub: _Stops) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, cast(Any, stub))


async def test_a_stray_cancellation_from_stop_is_not_passed_on() -> None:
    stub = _Stops(asyncio.CancelledError())
    await close_consumer(_consumer(stub))
    assert stub.stopped


async def test_an_error_from_stop_is_not_passed_on() -> None:
    stub = _Stops(OSError("broker away"))
    await close_consumer(_consumer(stub))
    assert stub.stopped


async def test_cancelling_the_caller_still_cancels_it() -> None:
    stub = _Stops(block=True)
    task = asyncio.create_task(close_consumer(_consumer(stub)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stub.stopped
