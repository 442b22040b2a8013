"""Faust's aiokafka consumer, fetching only from the partitions Faust has active.

Faust hands its live set of active partitions to aiokafka's `Fetcher.fetched_records`, which
runs in the consumer thread and waits up to a second for records, reading the set as it
goes; aiokafka reads an *empty* set as "no filter" (`if partitions and tp not in
partitions`). A recovery empties the set when it pauses the changelog partitions it has
read (the stream partitions are paused until it ends), so a fetch already waiting then
returns records of the paused stream partitions and moves their positions past them; Faust
drops them (not active) and nothing fetches them again unless a seek rewinds the
partition. The worker passes a view of the same set that is never empty-as-everything.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP
from faust.types.transports import ConsumerT

# Milliseconds the broker may hold a fetch that finds no records (Faust: 1,500).
FETCH_MAX_WAIT_MS = 100
# Seconds fetched records may wait to be consumed before the other partitions are fetched
# without them (aiokafka: 0.1).
PREFETCH_BACKOFF = 1.0


class ActiveSelection:
    """The partitions to return records of, read live from Faust's set; empty means none."""

    __slots__ = ("_tps",)

    def __init__(self, tps: Set[TP]) -> None:
        self._tps = tps

    def __contains__(self, tp: object) -> bool:
        return tp in self._tps

    def __bool__(self) -> bool:
        return True


def set_fetch_wait(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """`FETCH_MAX_WAIT_MS` for a consumer not started yet (Faust passes its own 1,500)."""
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by `start()`


def set_prefetch_backoff(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """`PREFETCH_BACKOFF` for a started consumer (aiokafka's consumer has no parameter)."""
    consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF


class StreamsConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with fetch timing for a worker whose assignment
    always holds idle partitions (commands, changelogs, partitions no user hashes to).

    aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose
    fetched records are not consumed yet. Once those have waited `prefetch_backoff` it
    fetches the others anyway: when they are all idle, the broker holds that fetch for
    `fetch_max_wait_ms` (1.5 s in Faust) and, the records being consumed meanwhile, no new
    fetch can go out before it returns. At 200 msg/s a worker busy for 100 ms fell into
    this and stayed there (each lump of 1.5 s of records took long enough to start the
    next): records reached it 1-2 s late. So: fetch the others only after a long wait,
    and let a fetch of idle partitions return soon.
    """

    def _create_worker_consumer(self, transport: Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        set_fetch_wait(consumer)
        return consumer

    async def on_start(self) -> None:
        """Start the consumer, then set the fetcher's prefetch backoff."""
        await super().on_start()
        assert self._consumer is not None
        set_prefetch_backoff(self._consumer)


class StreamsConsumer(Consumer):
    """Faust's aiokafka consumer that never lets an empty selection fetch everything."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return StreamsConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Fetch records of `active_partitions` (None: every partition, as in Faust)."""
        if active_partitions is None:
            return await super()._getmany(None, timeout)
        # aiokafka only tests truth and membership of what it is given.
        selection = cast(set[TP], ActiveSelection(active_partitions))
        return await super()._getmany(selection, timeout)


class StreamsTransport(Transport):
    """Faust's aiokafka transport (`kafka://`), making `StreamsConsumer`s."""

    Consumer: ClassVar[type[ConsumerT]] = StreamsConsumer
