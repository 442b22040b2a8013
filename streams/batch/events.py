"""User events of a batch, with ids derived from their cause so a redo keeps them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from hubcore.mongo import Document
from hubcore.store import conversation_from_doc
from schemas import (
    ConversationUpdate,
    ConversationUpdateData,
    Message,
    MessageStatusUpdate,
    MessageStatusUpdateData,
    NewMessage,
    NewMessageData,
    UnreadCountUpdate,
    UnreadCountUpdateData,
    event_id,
)
from streams.batch.records import CommandInput
from streams.batch.state import UserState


def new_message(user_id: str, message: Message, attempt: int = 0) -> NewMessage:
    """`new_message`; occurred when the hub received the message (a reply's retry
    `attempt` is told again, as pending)."""
    source = (message.id, f"retry-{attempt}") if attempt else (message.id,)
    return NewMessage(
        id=event_id("new_message", *source),
        user_id=user_id,
        occurred_at=message.received_at,
        data=NewMessageData(message=message),
    )


def conversation_update(user_id: str, doc: Document, occurred_at: datetime) -> ConversationUpdate:
    """`conversation_update` with the conversation's state after the batch (its projected
    document); the id comes from the conversation's version, so a redo repeats it."""
    return ConversationUpdate(
        id=event_id("conversation_update", str(doc["_id"]), str(doc["version"])),
        user_id=user_id,
        occurred_at=occurred_at,
        data=ConversationUpdateData(
            conversation=conversation_from_doc(doc), version=int(doc["version"])
        ),
    )


def status_updates(
    command: CommandInput, transitioned: Iterable[Document]
) -> list[MessageStatusUpdate]:
    """One `message_status_update` per conversation the command changed (none if nothing)."""
    by_conversation: dict[str, list[str]] = {}
    for doc in transitioned:
        by_conversation.setdefault(str(doc["conversationId"]), []).append(str(doc["_id"]))
    cmd = command.command
    return [
        MessageStatusUpdate(
            id=event_id("message_status_update", cmd.id, conv_id),
            user_id=cmd.user_id,
            occurred_at=cmd.issued_at,
            data=MessageStatusUpdateData(conversation_id=conv_id, message_ids=sorted(ids)),
        )
        for conv_id, ids in sorted(by_conversation.items())
    ]


def unread_count_update(
    user_id: str,
    state: UserState,
    changed: Mapping[str, int],
    cause_origin: str,
    occurred_at: datetime,
) -> UnreadCountUpdate:
    """`unread_count_update`: totals, per platform, and the conversations that changed
    (`changed`: id -> its count)."""
    return UnreadCountUpdate(
        id=event_id("unread_count_update", user_id, cause_origin),
        user_id=user_id,
        occurred_at=occurred_at,
        data=UnreadCountUpdateData(unread_counts=state.counts(changed), version=state.version),
    )
