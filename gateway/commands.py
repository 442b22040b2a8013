"""Mark-read: resolve the caller's unread message ids and put one command on `hub.commands`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.errors import NotFound, Unavailable
from gateway.inbox import Inbox
from hubcore.kafka import Topics
from schemas import MarkRead
from schemas.base import utc_now

MAX_IDS_PER_COMMAND = 10_000  # MarkRead.message_ids' schema limit


class ReadCommands:
    """Turns a user's "mark read" into `MarkRead` records with explicit message ids.

    Ids are resolved here, when the user acts, so replaying `hub.commands` applies exactly
    what the user saw. Only the caller's own unread messages are named; nothing to mark
    means no command at all.
    """

    def __init__(
        self, inbox: Inbox, producer: Callable[[], AIOKafkaProducer | None], topics: Topics
    ) -> None:
        self._inbox = inbox
        self._producer = producer
        self._topic = topics.commands

    async def read_conversation(self, user_id: str, conversation_id: str) -> list[MarkRead]:
        """Mark the conversation's currently unread messages read."""
        if not await self._inbox.owns_conversation(user_id, conversation_id):
            raise NotFound(f"no conversation {conversation_id!r}")
        unread = await self._inbox.unread_in_conversation(user_id, conversation_id)
        return await self._send(user_id, unread, conversation_id)

    async def read_messages(self, user_id: str, message_ids: list[str]) -> list[MarkRead]:
        """Mark the given messages read; every id must be one of the caller's messages."""
        wanted = list(dict.fromkeys(message_ids))
        owned = await self._inbox.owned_messages(user_id, wanted)
        found = {doc["_id"] for doc in owned}
        missing = [m for m in wanted if m not in found]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise NotFound(f"no message {shown}")
        unread = [doc for doc in owned if doc.get("status") == "unread"]
        conversations = {doc.get("conversationId") for doc in unread}
        conversation_id = conversations.pop() if len(conversations) == 1 else None
        order = {m: i for i, m in enumerate(wanted)}
        ids = sorted((doc["_id"] for doc in unread), key=order.__getitem__)
        return await self._send(user_id, ids, conversation_id)

    async def _send(
        self, user_id: str, message_ids: list[str], conversation_id: str | None
    ) -> list[MarkRead]:
        if not message_ids:
            return []
        producer = self._producer()
        if producer is None:
            raise Unavailable("Kafka is not reachable; retry later")
        commands = [
            MarkRead(
                id=f"cmd_{uuid.uuid4().hex}",
                user_id=user_id,
                conversation_id=conversation_id,
                message_ids=message_ids[start : start + MAX_IDS_PER_COMMAND],
                issued_at=utc_now(),
            )
            for start in range(0, len(message_ids), MAX_IDS_PER_COMMAND)
        ]
        key = user_id.encode()
        try:
            for command in commands:
                # Acknowledged by all in-sync replicas before the client hears 202.
                await producer.send_and_wait(self._topic, key=key, value=command.to_json())
        except KafkaError as exc:
            raise Unavailable(f"Kafka did not take the command: {exc}; retry later") from exc
        return commands
