"""The caller's commands onto `hub.commands`: mark-read (with the unread ids resolved now)
and replies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.errors import NotFound, Unavailable
from gateway.inbox import Inbox
from hubcore.kafka import Topics
from schemas import MarkRead, SendMessage, event_id, outbound_message_id
from schemas.attachments import OutboundAttachment
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

    async def reply(
        self,
        user_id: str,
        conversation_id: str,
        text: str,
        client_message_id: str,
        attachments: Sequence[OutboundAttachment] = (),
    ) -> SendMessage:
        """Put a reply into the caller's conversation; its id derives from the client's."""
        if not await self._inbox.owns_conversation(user_id, conversation_id):
            raise NotFound(f"no conversation {conversation_id!r}")
        message_id = outbound_message_id(user_id, conversation_id, client_message_id)
        command = SendMessage(
            # Derived too: the same reply sent again is recognisably the same command.
            id=event_id("send", message_id).replace("evt_", "cmd_", 1),
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=message_id,
            client_message_id=client_message_id,
            text=text,
            issued_at=utc_now(),
            attachments=list(attachments),
        )
        await self._produce(user_id, [command])
        return command

    async def _send(
        self, user_id: str, message_ids: list[str], conversation_id: str | None
    ) -> list[MarkRead]:
        if not message_ids:
            return []
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
        await self._produce(user_id, commands)
        return commands

    async def _produce(self, user_id: str, commands: list[MarkRead] | list[SendMessage]) -> None:
        producer = self._producer()
        if producer is None:
            raise Unavailable("Kafka is not reachable; retry later")
        key = user_id.encode()
        try:
            for command in commands:
                # Acknowledged by all in-sync replicas before the client hears 202.
                await producer.send_and_wait(self._topic, key=key, value=command.to_json())
        except KafkaError as exc:
            raise Unavailable(f"Kafka did not take the command: {exc}; retry later") from exc
