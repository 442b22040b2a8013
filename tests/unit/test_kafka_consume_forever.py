"""`consume_forever`, the connectors' consumer reconnect loop, against stand-in consumers:
an outage drops the consumer and a new one follows after a growing backoff (reset once a
consumer starts again), the wait ends when the owner stops, and an error that is not an
outage is not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from hubcore.kafka import RECONNECT, Session, consume_forever
from hubcore.retry import Backoff


class _Consumer:
    """Stands for a consumer: `start()` fails with `start_error` when given one."""

    def __init__(self, start_error: Exception | None = None) -> None:
        self.start_error = start_error
        self.started = False
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        self.stopped.set()


class _Sessions:
    """Hands out the scripted sessions in turn: (start error, what the run does)."""

    def __init__(
        self, script: list[tuple[Exception | None, Callable[[], Awaitable[None]] | None]]
    ) -> None:
        self.script = script
        self.opened: list[_Consumer] = []
        self._new = asyncio.Event()

    def __call__(self) -> Session:
        start_error, run = self.script[len(self.opened)]
        consumer = _Consumer(start_error)
        self.opened.append(consumer)
        self._new.set()
        self._new = asyncio.Event()
        return cast(AIOKafkaConsumer, cast(Any, consumer)), run or _never

    async def opened_at_least(self, count: int) -> None:
        while len(self.opened) < count:
            await self._new.wait()


async def _never() -> None:
    raise AssertionError("a session whose start failed must not run")


def _outage() -> Exception:
    return cast(Exception, KafkaConnectionError("broker away"))  # aiokafka is untyped


async def test_outages_back_off_growing_and_reset_once_a_consumer_starts() -> None:
    stopping = asyncio.Event()
    ran: list[int] = []

    async def fails_later() -> None:
        ran.append(1)
        raise _outage()

    async def stops() -> None:
        ran.append(2)
        stopping.set()

    sessions = _Sessions([(_outage(), None), (_outage(), None), (None, fails_later), (None, stops)])
    backoff = Backoff(first=0.01, factor=10.0, max_delay=1.0)
    with capture_logs() as logs:
        await asyncio.wait_for(
            consume_forever("test consumer", sessions, stopping=stopping, backoff=backoff), 10
        )
    assert ran == [1, 2]
    assert len(sessions.opened) == 4
    assert all(c.stopped.is_set() for c in sessions.opened)  # every consumer is dropped
    waits = [e["retry_in"] for e in logs if e["event"] == "test consumer failed"]
    # 1st and 2nd failure in a row, then the first after a consumer started again.
    assert len(waits) == 3
    assert 0.005 <= waits[0] <= 0.01
    assert 0.05 <= waits[1] <= 0.1
    assert 0.005 <= waits[2] <= 0.01


async def test_stopping_ends_the_backoff_wait() -> None:
    stopping = asyncio.Event()
    sessions = _Sessions([(_outage(), None)])
    hour = Backoff(first=3600.0, max_delay=3600.0)
    task = asyncio.create_task(
        consume_forever("test consumer", sessions, stopping=stopping, backoff=hour)
    )
    await asyncio.wait_for(sessions.opened_at_least(1), 5)
    await sessions.opened[0].stopped.wait()  # the loop is in its backoff wait now
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert len(sessions.opened) == 1


async def test_ready_is_awaited_before_the_start_and_its_outage_retried() -> None:
    stopping = asyncio.Event()
    calls = 0

    async def ready() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("store away")

    async def stops() -> None:
        stopping.set()

    sessions = _Sessions([(None, _never), (None, stops)])
    await asyncio.wait_for(
        consume_forever(
            "test consumer",
            sessions,
            ready=ready,
            stopping=stopping,
            backoff=Backoff(first=0.001, max_delay=0.001),
        ),
        10,
    )
    assert calls == 2
    assert [c.started for c in sessions.opened] == [False, True]
    assert sessions.opened[0].stopped.is_set()


async def test_an_error_that_is_not_an_outage_is_raised_and_the_consumer_dropped() -> None:
    async def crashes() -> None:
        raise ValueError("a bug")

    sessions = _Sessions([(None, crashes)])
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(consume_forever("test consumer", sessions), 10)
    assert sessions.opened[0].stopped.is_set()


async def test_without_stopping_it_runs_until_cancelled() -> None:
    sessions = _Sessions([(_outage(), None)] * 1000)
    task = asyncio.create_task(
        consume_forever("test consumer", sessions, backoff=Backoff(first=0.001, max_delay=0.001))
    )
    await asyncio.wait_for(sessions.opened_at_least(3), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_backoff_stays_bounded_however_long_an_outage_lasts() -> None:
    # 2.0 ** 1024 overflows a float: the loop must not end after ~3 hours of an outage.
    for failures in (1_100, 10**6):
        assert 5.0 <= RECONNECT.delay(failures) <= RECONNECT.max_delay
