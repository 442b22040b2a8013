"""Where a batch's output records go: Kafka when live, nowhere during a replay."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

Headers = Sequence[tuple[str, bytes]]


class RecordSink(Protocol):
    """Collects output records; `flush` returns when all are durable."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> None:
        """Queue one record (does not wait for the broker)."""
        ...

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged; raise if one failed."""
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

    async def flush(self) -> None:
        """Wait for every queued record; the first failure is raised after all settle."""
        pending, self._pending = self._pending, []
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
