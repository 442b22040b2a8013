"""The unread table: a Faust table whose keys live on their user's partition, and the
`StateStore` over it."""

from __future__ import annotations

import asyncio
import functools
import weakref
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from faust.streams import _current_event
from faust.tables.table import Table
from faust.types import TP

from hubcore.kafka import partition_for
from streams.batch.produce import PartitionBatches, Taken, last_offset
from streams.batch.state import ConversationState, UserState, conversation_key, user_part


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`: the source
    records', the changelog's and the table store's partition of a user."""
    return partition_for(key, _partition_ids(partitions), [])


@functools.cache
def _partition_ids(partitions: int) -> list[int]:
    return list(range(partitions))


class UnreadTable(Table[bytes, Any]):
    """A Faust table whose changelog the worker writes itself.

    Faust sends one changelog record per key set through its producer buffer, one await
    per record, and acknowledges source offsets after a buffer flush that gives up after
    0.1 s without progress. A batch sets a value per touched user and conversation, so the
    table only remembers what was set; `TableStateStore.flush` sends it all with the
    worker's producer, each key to its user's partition, and awaits the acks.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: dict[bytes, Any] = {}

    def on_key_set(self, key: bytes, value: Any) -> None:
        """Remember the value for the changelog (the last one of a key wins)."""
        self._unsent[key] = value

    def take_unsent(self) -> dict[bytes, Any]:
        """The values set since the last call."""
        unsent, self._unsent = self._unsent, {}
        return unsent


@dataclass(frozen=True, slots=True)
class _PartitionMessage:
    partition: int


class _PartitionEvent:
    """Stands in for the current event: all Faust's RocksDB store reads of it."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _PartitionMessage(partition)


class TableStateStore:
    """`StateStore` over the Faust table: a user's totals under the user id's bytes (= the
    source key), each conversation under `streams.state.conversation_key`."""

    def __init__(
        self,
        table: UnreadTable,
        partitions: int,
        *,
        file_by_event: bool,
        producer: AIOKafkaProducer,
        changelog: str,
    ) -> None:
        self.table = table
        self.partitions = partitions
        self.file_by_event = file_by_event
        self.producer = producer
        self.batches = PartitionBatches(producer)
        self.changelog = changelog

    def get_user(self, user_id: str) -> UserState:
        """The user's totals from the table."""
        return UserState.from_value(self.table.get(user_id.encode()))

    def put_user(self, user_id: str, state: UserState) -> None:
        """Write the totals (to the changelog at `flush`)."""
        self._put(user_id.encode(), state.to_value())

    def get_conversation(self, user_id: str, conversation_id: str) -> ConversationState:
        """One conversation's state from the table."""
        return ConversationState.from_value(
            self.table.get(conversation_key(user_id, conversation_id))
        )

    def put_conversation(
        self, user_id: str, conversation_id: str, state: ConversationState
    ) -> None:
        """Write one conversation's state."""
        self._put(conversation_key(user_id, conversation_id), state.to_value())

    def _put(self, key: bytes, value: dict[str, Any]) -> None:
        if not self.file_by_event:
            self.table[key] = value
            return
        # Faust's RocksDB store files a key under the *current event's* partition (it
        # ignores `use_partitioner`), and a batch spans partitions: make the current
        # event one of the key's own partition, as the changelog partitioner computes it.
        marker = _PartitionEvent(key_partition(user_part(key), self.partitions))
        token = _current_event.set(weakref.ref(marker))  # type: ignore[arg-type]
        try:
            self.table[key] = value
        finally:
            _current_event.reset(token)

    async def send(self) -> asyncio.Future[None]:
        """Send the values set since the last call to the changelog, one batch per
        partition; the answer resolves once they are acked."""
        for key, value in self.table.take_unsent().items():
            partition = key_partition(user_part(key), self.partitions)
            await self.batches.add(self.changelog, key, orjson.dumps(value), partition=partition)
        # Shipped by a task, as the batch's events are (`BatchingKafkaSink.flush`, called
        # after this): both tasks hand their batches over before the producer's sender
        # wakes, so the changelog and the events leave in one produce request.
        return asyncio.ensure_future(self._persisted(self.batches.take()))

    async def _persisted(self, taken: Taken) -> None:
        shipped = await self.batches.ship(taken)
        written = await asyncio.gather(*(future for future, _ in shipped))
        if self.file_by_event:
            # What Faust does on a changelog ack: RocksDB remembers how far it is current.
            for meta, (_, records) in zip(written, shipped, strict=True):
                offset = last_offset(meta, records)
                self.table.data.set_persisted_offset(TP(meta.topic, meta.partition), offset)
