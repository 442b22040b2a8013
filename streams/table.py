"""The unread table: a Faust table whose keys live on their user's partition, and the
`StateStore` over it."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.tables.table import Table

from streams.state import ConversationState, UserState, conversation_key, user_part


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`: the source
    records', the changelog's and the table store's partition of a user."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class UnreadTable(Table[bytes, Any]):
    """A Faust table that hands out the futures of its changelog writes.

    Faust acknowledges source offsets after `producer.flush()`, and its buffer flush gives
    up after 0.1 s without progress, so a commit may overtake a changelog write. The agent
    awaits these futures before acknowledging, which closes that window.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[asyncio.Future[Any]] = []

    def send_changelog(self, partition: int | None, key: Any, *args: Any, **kwargs: Any) -> Any:
        """Send as Faust does, to the partition of the key's user, remembering the future."""
        if isinstance(key, bytes):
            # A conversation's key (user, conversation) lives with its user's records.
            partition = key_partition(user_part(key), self.partitions or 1)
        fut = super().send_changelog(partition, key, *args, **kwargs)
        self._pending.append(fut)
        return fut

    async def wait_changelog(self) -> None:
        """Return when every changelog write so far is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


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

    def __init__(self, table: UnreadTable, partitions: int, *, file_by_event: bool) -> None:
        self.table = table
        self.partitions = partitions
        self.file_by_event = file_by_event

    def get_user(self, user_id: str) -> UserState:
        """The user's totals from the table."""
        return UserState.from_value(self.table.get(user_id.encode()))

    def put_user(self, user_id: str, state: UserState) -> None:
        """Write the totals; Faust sends them to the changelog."""
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

    async def flush(self) -> None:
        """Wait for the changelog."""
        await self.table.wait_changelog()
