"""Messages and conversations: the raw-message record and the client-facing shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.attachments import MAX_INBOUND_ATTACHMENTS, Attachment, InboundAttachment
from schemas.base import HubModel, Record, UtcDatetime

Platform = Literal["telegram", "whatsapp", "slack", "email", "generic"]
PLATFORMS: tuple[Platform, ...] = ("telegram", "whatsapp", "slack", "email", "generic")
# Inbound messages are unread/read; the hub's own replies move pending -> sent ->
# delivered -> read, or to failed.
MessageStatus = Literal["unread", "read", "pending", "sent", "delivered", "failed"]
Direction = Literal["inbound", "outbound"]


class Sender(HubModel):
    """Who sent a message, as the platform names them."""

    id: str = Field(min_length=1, max_length=512)
    name: str | None = Field(default=None, max_length=512)


class Message(HubModel):
    """A message as clients see it (WebSocket `new_message`, REST)."""

    id: str
    platform: Platform
    account_id: str
    conversation_id: str
    sender: Sender
    text: str
    sent_at: UtcDatetime
    received_at: UtcDatetime
    status: MessageStatus = "unread"
    direction: Direction = "inbound"
    edited_at: UtcDatetime | None = None
    deleted: bool = False
    attachments: list[Attachment] = Field(default_factory=list)


class Conversation(HubModel):
    """A chat, channel or mailbox thread as clients see it."""

    id: str
    platform: Platform
    account_id: str
    title: str | None = None
    last_message: Message | None = None
    unread_count: int = Field(default=0, ge=0)
    updated_at: UtcDatetime
    recipient: str | None = Field(
        default=None, description="Email: the one address a reply goes to (shown before sending)."
    )


class UnreadCounts(HubModel):
    """A user's unread counts; `by_conversation` may hold only the conversations that changed."""

    total: int = Field(ge=0)
    by_platform: dict[str, int] = Field(default_factory=dict)
    by_conversation: dict[str, int] = Field(default_factory=dict)


class RawMessage(Record):
    """`hub.raw-messages`: one platform message as received, with its normalized fields.

    Keyed by the owning hub user id. `id` is deterministic (see `schemas.ids.message_id`),
    so a message delivered twice is recognisable downstream.
    """

    SCHEMA = "hub.raw-message/1"
    schema_: Literal["hub.raw-message/1"] = Field(default="hub.raw-message/1", alias="schema")
    id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=256)
    platform: Platform
    account_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(min_length=1, max_length=128)
    external_conversation_id: str = Field(max_length=1024)
    external_message_id: str = Field(max_length=1024)
    conversation_title: str | None = Field(default=None, max_length=1024)
    sender: Sender
    text: str
    sent_at: UtcDatetime
    received_at: UtcDatetime
    raw: dict[str, Any] = Field(
        default_factory=dict, description="The platform's payload for this message, as received."
    )
    attachments: list[InboundAttachment] = Field(
        default_factory=list, max_length=MAX_INBOUND_ATTACHMENTS
    )

    def to_message(self, status: MessageStatus = "unread") -> Message:
        """The client-facing view of this record."""
        return Message(
            id=self.id,
            platform=self.platform,
            account_id=self.account_id,
            conversation_id=self.conversation_id,
            sender=self.sender,
            text=self.text,
            sent_at=self.sent_at,
            received_at=self.received_at,
            status=status,
            attachments=[a.public() for a in self.attachments],
        )
