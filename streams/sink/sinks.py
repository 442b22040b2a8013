"""Where a batch's output records go: Kafka when live, nowhere during a replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

Headers = Sequence[tuple[str, bytes]]


class RecordSink(Protocol):
    """Collects output records; awaiting `flush()` returns when all are durable."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> None:
        """Queue one record (does not wait for the broker)."""
        ...

    def flush(self) -> Awaitable[None]:
        """What resolves once every record queued so far is acknowledged (raises if one
        failed); records sent after the call are not part of it."""
        ...


class KafkaSink:
    """Sends through one producer and awaits the batch's futures together."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._pending: list[asyncio.Future[Any]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> None:
        """Append to the producer's batch; the future resolves on the broker's ack."""
        fut = await self.producer.send(topic, value=value, key=key, headers=list(headers))
        self._pending.append(fut)

    def flush(self) -> Awaitable[None]:
        """The queued records' acks (taken now); the first failure is raised after all
        settle."""
        pending, self._pending = self._pending, []
        return self._settle(pending)

    @staticmethod
    async def _settle(pending: list[asyncio.Future[Any]]) -> None:
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


class DiscardSink:
    """Counts and drops: `hub replay` rebuilds state without telling clients again."""

    def __init__(self) -> None:
        self.discarded = 0

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> None:
        """Drop the record."""
        self.discarded += 1

    async def flush(self) -> None:
        """Nothing is pending."""
