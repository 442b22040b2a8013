"""Faust's aiokafka consumer, fetching only from the partitions Faust has active, and with
a short fetch wait.

Faust hands its live set of active partitions to aiokafka's `Fetcher.fetched_records`, which
runs in the consumer thread and waits up to a second for records, reading the set as it
goes; aiokafka reads an *empty* set as "no filter" (`if partitions and tp not in
partitions`). A recovery empties the set when it pauses the changelog partitions it has
read (the stream partitions are paused until it ends), so a fetch already waiting then
returns records of the paused stream partitions and moves their positions past them; Faust
drops them (not active) and nothing fetches them again unless a seek rewinds the
partition. The worker passes a view of the same set that is never empty-as-everything.

Faust also fixes the broker's fetch wait at 1.5 s, which stalls busy partitions behind
idle ones (`hubcore.kafka.FETCH_MAX_WAIT_MS` says how); the worker uses the hub's wait.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP
from faust.types.transports import ConsumerT, TransportT

from hubcore.kafka import FETCH_MAX_WAIT_MS


class ActiveSelection:
    """The partitions to return records of, read live from Faust's set; empty means none."""

    __slots__ = ("_tps",)

    def __init__(self, tps: Set[TP]) -> None:
        self._tps = tps

    def __contains__(self, tp: object) -> bool:
        return tp in self._tps

    def __bool__(self) -> bool:
        return True


class StreamsConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, making its aiokafka consumer with the hub's fetch wait."""

    def _create_worker_consumer(self, transport: TransportT) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(cast(Any, transport))
        # Read by `start()` when it makes the fetcher; Faust passes no setting for it.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


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
