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
idle ones (`hubcore.kafka.FETCH_MAX_WAIT_MS` says how); the worker uses the hub's short wait
while some fetched records are still unconsumed (only then does a fetch leave partitions
out), and `IDLE_FETCH_MAX_WAIT_MS` otherwise: a fetch of every partition returns as soon
as any of them has a record, so the longer wait delays nothing and spares the idle worker
fifty empty fetches a second (`WaitAdaptingFetcher`).

Faust hands each fetched record to its streams one at a time (a conductor call, two tasks
and a wait per record, then the stream's own iteration): at light load that was a tenth
of the worker's CPU, under a backlog a quarter, and a batch found only the few records
that had made it through. The worker's records of the source topics go instead to a
`SourceBuffer` a whole fetch at a time, which the batch loop empties; Faust still owns
the fetching, the offsets (records are tracked and acknowledged as a stream does) and
the rest of its topics (the table's changelog goes through its conductor as before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Iterable, Set
from typing import Any, ClassVar, cast

import aiokafka
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP, Message
from faust.types.transports import ConsumerT, TransportT
from mode import ServiceT

from hubcore.kafka import FETCH_MAX_WAIT_MS

# The broker's wait for a fetch of every partition (none left out): it ends at the first
# record, so it bounds only how often an idle worker asks (~0.5-1 ms of CPU per empty
# fetch, both threads). After a pause or a seek, a partition joins the fetches once the
# one in flight returns: a resume (end of a recovery, a rebalance) waits up to this long.
IDLE_FETCH_MAX_WAIT_MS = 250


class ActiveSelection:
    """The partitions to return records of, read live from Faust's set; empty means none."""

    __slots__ = ("_tps",)

    def __init__(self, tps: Set[TP]) -> None:
        self._tps = tps

    def __contains__(self, tp: object) -> bool:
        return tp in self._tps

    def __bool__(self) -> bool:
        return True


class SourceBuffer:
    """Fetched records of the source topics, waiting for the batch loop (in fetch order).

    Cleared when Faust's flow control resumes after a rebalance, as Faust clears its
    stream buffers (`app.flow_control.manage_queue`): what was fetched before is fetched
    again from the committed offsets.
    """

    def __init__(self, topics: Iterable[str], limit: int) -> None:
        self.topics = frozenset(topics)
        self.limit = limit
        self._messages: list[Message] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def full(self) -> bool:
        """True while the consumer must wait for `room`."""
        return len(self._messages) >= self.limit

    def put(self, messages: list[Message]) -> None:
        """Add a fetch's records; past `limit` the consumer waits for `room`."""
        self._messages.extend(messages)
        self._ready.set()
        if len(self._messages) >= self.limit:
            self._room.clear()

    async def room(self) -> None:
        """Return once the buffer is below its limit."""
        await self._room.wait()

    async def take(self, max_: int) -> list[Message]:
        """The oldest records (1 to `max_`), as soon as there are some."""
        while not self._messages:
            self._ready.clear()
            await self._ready.wait()
        taken, self._messages = self._messages[:max_], self._messages[max_:]
        if len(self._messages) < self.limit:
            self._room.set()
        return taken

    def clear(self) -> None:
        """Drop every record (flow control resumed: they are fetched again)."""
        self._messages = []
        self._room.set()


class WaitAdaptingFetcher(Fetcher):  # type: ignore[misc]
    """aiokafka's fetcher, choosing each fetch's wait by what it leaves out.

    A partition whose fetched records are not consumed yet is left out of the next fetch
    (after `prefetch_backoff`): that fetch must not be held long, or the partition's next
    records wait for it (`FETCH_MAX_WAIT_MS`). Only the partitions the consumer reads
    count: records of the others (the tables' changelogs after their recovery, which
    the worker writes itself) stay unconsumed for good. With none waiting, every
    partition read is in the fetch and the broker answers at its first record.
    """

    _selection: Container[TP] | None = None

    async def fetched_records(
        self, partitions: Container[TP] | None, timeout: float = 0, max_records: int | None = None
    ) -> Any:
        """aiokafka's, remembering which partitions the consumer reads (falsy: all)."""
        self._selection = partitions
        return await super().fetched_records(partitions, timeout=timeout, max_records=max_records)

    def _get_actions_per_node(self, assignment: Any) -> Any:
        selection = self._selection
        waiting = any(tp in selection for tp in self._records) if selection else bool(self._records)
        self._fetch_max_wait_ms = FETCH_MAX_WAIT_MS if waiting else IDLE_FETCH_MAX_WAIT_MS
        return super()._get_actions_per_node(assignment)


def adapt_fetch_wait(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """Make a started consumer's fetcher a `WaitAdaptingFetcher`."""
    # aiokafka makes its `Fetcher` in `start()` and takes no factory for it; the fetch
    # routine looks the method up on each round, so this holds from the next one.
    consumer._fetcher.__class__ = WaitAdaptingFetcher


class StreamsConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, making its aiokafka consumer with the hub's fetch waits."""

    async def on_start(self) -> None:
        """Start the consumer as Faust does, its fetcher choosing the wait per fetch."""
        await super().on_start()
        adapt_fetch_wait(self._ensure_consumer())

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

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Faust 0.15.3's fetch loop, with the records of the source topics put in the
        app's `SourceBuffer` one fetch at a time instead of through the conductor."""
        buffer: SourceBuffer | None = getattr(self.app, "source_buffer", None)
        if buffer is None:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set  # type: ignore[attr-defined]
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0)
                # Faust's `self.sleep(0)` here costs a task and a timeout: a bare yield
                # lets the loop in as well.
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                batch: list[Message] = []
                async for tp, message in fetched:
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # read already (Faust drops it too)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in buffer.topics:
                        batch.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                if batch:
                    buffer.put(batch)
                    if buffer.full:  # (a wait costs four tasks: not per fetch)
                        await self.wait_first(buffer.room(), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class StreamsTransport(Transport):
    """Faust's aiokafka transport (`kafka://`), making `StreamsConsumer`s."""

    Consumer: ClassVar[type[ConsumerT]] = StreamsConsumer
