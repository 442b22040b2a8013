"""Where P3's latency goes: the broker timestamps of each bench message's hops.

A probe consumer (no group, every partition from the end) reads `raw-messages` and
`user-events`. A record's timestamp is its producer's clock at `send` (CreateTime): the
raw record's is when the connectors produced the webhook's message, the first event's
carrying the message is when the streams worker sent it. With the load generator's send
and frame arrival times (same machine, same clock after conversion) each message's path
splits into webhook -> raw produce (HTTP, validation), raw produce -> event produce (the
raw produce's ack, the worker's fetch and its batch) and event produce ->
frame (the events' ack, the gateway's fetch and push).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.stats import Latency


def _number(value: bytes, tag: bytes) -> int | None:
    """The bench sequence number after `tag` in a record's JSON, if any."""
    at = value.find(tag)
    if at < 0:
        return None
    start = end = at + len(tag)
    while end < len(value) and 48 <= value[end] <= 57:
        end += 1
    return int(value[start:end]) if end > start else None


class HopProbe:
    """Timestamps (perf_counter seconds) of each numbered message's raw and event records."""

    def __init__(self, bootstrap: str, raw_topic: str, events_topic: str, tag: str) -> None:
        self.topics = {raw_topic: "raw", events_topic: "event"}
        self.tag = tag.encode()
        self.raw: dict[int, float] = {}
        self.event: dict[int, float] = {}
        # Broker timestamps are wall-clock ms; the load generator times with perf_counter.
        self._offset = time.time() - time.perf_counter()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign every partition of both topics at their ends; start reading."""
        await self._consumer.start()
        # The consumer knows no topic's partitions until asked for them.
        for topic in self.topics:
            await self._consumer._client._wait_on_metadata(topic)
        tps = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                seen = self.raw if self.topics[tp.topic] == "raw" else self.event
                for record in records:
                    n = _number(record.value or b"", self.tag)
                    if n is not None and n not in seen:
                        seen[n] = record.timestamp / 1000 - self._offset

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def split(
        self, sent: dict[int, float], arrived: dict[int, float], numbers: range
    ) -> dict[str, Any]:
        """p50/p99/max of each hop over the messages of `numbers` seen at every point."""
        hops: dict[str, list[float]] = {
            "webhook_to_raw": [],
            "raw_to_event": [],
            "event_to_frame": [],
        }
        for n in numbers:
            if n in sent and n in arrived and n in self.raw and n in self.event:
                hops["webhook_to_raw"].append(self.raw[n] - sent[n])
                hops["raw_to_event"].append(self.event[n] - self.raw[n])
                hops["event_to_frame"].append(arrived[n] - self.event[n])
        return {k: Latency.of_seconds(v).as_dict() for k, v in hops.items() if v}
