"""The hub's event shapes, defined once: Kafka records, WebSocket frames and their JSON Schemas."""

from schemas.commands import Command, MarkRead
from schemas.deadletter import DeadLetter, DeadLetterSource
from schemas.events import (
    ConversationUpdate,
    ConversationUpdateData,
    ErrorData,
    ErrorEvent,
    MessageStatusUpdate,
    MessageStatusUpdateData,
    NewMessage,
    NewMessageData,
    UnreadCountUpdate,
    UnreadCountUpdateData,
    UserEvent,
    parse_user_event,
)
from schemas.ids import account_id, conversation_id, event_id, message_id
from schemas.messages import Conversation, Message, Platform, RawMessage, Sender, UnreadCounts

__all__ = [
    "Command",
    "Conversation",
    "ConversationUpdate",
    "ConversationUpdateData",
    "DeadLetter",
    "DeadLetterSource",
    "ErrorData",
    "ErrorEvent",
    "MarkRead",
    "Message",
    "MessageStatusUpdate",
    "MessageStatusUpdateData",
    "NewMessage",
    "NewMessageData",
    "Platform",
    "RawMessage",
    "Sender",
    "UnreadCountUpdate",
    "UnreadCountUpdateData",
    "UnreadCounts",
    "UserEvent",
    "account_id",
    "conversation_id",
    "event_id",
    "message_id",
    "parse_user_event",
]
