"""`hub.user-events`: every event pushed to a user's clients, one model per contract type."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from schemas.base import HubModel, Record, UtcDatetime
from schemas.messages import Conversation, Message, MessageStatus, UnreadCounts

EventType = Literal[
    "new_message",
    "message_status_update",
    "message_updated",
    "message_deleted",
    "unread_count_update",
    "conversation_update",
    "error",
    "presence_update",
]


class NewMessageData(HubModel):
    message: Message


class MessageStatusUpdateData(HubModel):
    conversation_id: str
    message_ids: list[str]
    status: MessageStatus = "read"


class MessageUpdatedData(HubModel):
    message: Message


class MessageDeletedData(HubModel):
    conversation_id: str
    message_id: str


class UnreadCountUpdateData(HubModel):
    unread_counts: UnreadCounts
    # The user's state version: grows with every change, so a reader that also has REST's
    # answer keeps the newer of the two (the gateway does, docs/protocol.md).
    version: int = Field(default=0, ge=0)


class ConversationUpdateData(HubModel):
    conversation: Conversation
    # The conversation's state version, as for `UnreadCountUpdateData.version`.
    version: int = Field(default=0, ge=0)


class ErrorData(HubModel):
    code: str
    message: str
    message_id: str | None = Field(
        default=None, description="The outbound message concerned (`send_failed`)."
    )


class PresenceUpdateData(HubModel):
    online: bool
    devices: int = Field(ge=0, description="The user's live connections, on every gateway.")
    last_seen: UtcDatetime


class _UserEventBase(Record):
    """Keyed by the hub user id; `id` is deterministic for the cause of the event."""

    SCHEMA = "hub.user-event/1"
    schema_: Literal["hub.user-event/1"] = Field(default="hub.user-event/1", alias="schema")
    id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=256)
    occurred_at: UtcDatetime


class NewMessage(_UserEventBase):
    type: Literal["new_message"] = "new_message"
    data: NewMessageData


class MessageStatusUpdate(_UserEventBase):
    type: Literal["message_status_update"] = "message_status_update"
    data: MessageStatusUpdateData


class MessageUpdated(_UserEventBase):
    type: Literal["message_updated"] = "message_updated"
    data: MessageUpdatedData


class MessageDeleted(_UserEventBase):
    type: Literal["message_deleted"] = "message_deleted"
    data: MessageDeletedData


class UnreadCountUpdate(_UserEventBase):
    type: Literal["unread_count_update"] = "unread_count_update"
    data: UnreadCountUpdateData


class ConversationUpdate(_UserEventBase):
    type: Literal["conversation_update"] = "conversation_update"
    data: ConversationUpdateData


class ErrorEvent(_UserEventBase):
    type: Literal["error"] = "error"
    data: ErrorData


class PresenceUpdate(_UserEventBase):
    type: Literal["presence_update"] = "presence_update"
    data: PresenceUpdateData


UserEvent = Annotated[
    NewMessage
    | MessageStatusUpdate
    | MessageUpdated
    | MessageDeleted
    | UnreadCountUpdate
    | ConversationUpdate
    | ErrorEvent
    | PresenceUpdate,
    Field(discriminator="type"),
]
USER_EVENT_ADAPTER: TypeAdapter[UserEvent] = TypeAdapter(UserEvent)


def parse_user_event(data: bytes | str) -> UserEvent:
    """Validate a `hub.user-events` value into its typed model."""
    return USER_EVENT_ADAPTER.validate_json(data)
