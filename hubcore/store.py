"""Layout of the derived MongoDB documents, shared by streams (writes) and gateway (reads).

messages       {_id: message id, userId, platform, accountId, conversationId,
                sender: {id, name}, text, sentAt, receivedAt, status: "unread" | "read",
                attachments: [Attachment fields, camelCase] (absent when none),
                origin: "<topic>:<partition>:<offset>" of the record that inserted it,
                readBy: origin of the command that marked it read (absent while unread)}
conversations  {_id: conversation id, userId, platform, accountId, title,
                lastMessage: message document fields (without _id/origin/readBy) | null,
                lastMessageAt, unreadCount, updatedAt, version}
unread         {_id: user id, total, byPlatform: {platform: n}, version}

`version` only grows: a projection write never replaces a newer version (streams). The
per-conversation counts live in `conversations.unreadCount` only, so no document grows
with a user's number of conversations.

Times are BSON dates (UTC, millisecond precision, what `schemas.base.UtcDatetime` keeps).
"""

from __future__ import annotations

from collections.abc import Mapping

from hubcore.mongo import Document
from schemas import Conversation, Message, RawMessage, UnreadCounts

_MESSAGE_FIELDS = (
    "platform",
    "accountId",
    "conversationId",
    "sender",
    "text",
    "sentAt",
    "receivedAt",
    "status",
    "direction",
    "editedAt",
    "deleted",
    "attachments",
)


def message_doc(raw: RawMessage, origin: str) -> Document:
    """The `messages` document a raw record inserts (status starts unread)."""
    return {
        "_id": raw.id,
        "userId": raw.user_id,
        "platform": raw.platform,
        "accountId": raw.account_id,
        "conversationId": raw.conversation_id,
        "sender": raw.sender.model_dump(by_alias=True),
        "text": raw.text,
        "sentAt": raw.sent_at,
        "receivedAt": raw.received_at,
        "status": "unread",
        "origin": origin,
        # Only when there are some: most messages carry none, and documents stay small.
        **(
            {"attachments": [a.public().to_dict() for a in raw.attachments]}
            if raw.attachments
            else {}
        ),
    }


def message_from_doc(doc: Document) -> Message:
    """The client-facing Message of a `messages` document (or a `lastMessage` value)."""
    return Message.model_validate(
        {"id": doc.get("_id", doc.get("id")), **{k: doc[k] for k in _MESSAGE_FIELDS if k in doc}}
    )


def last_message_value(doc: Document) -> Document:
    """What a conversation stores as `lastMessage`: the message without bookkeeping fields."""
    return {"id": doc["_id"], **{k: doc[k] for k in _MESSAGE_FIELDS if k in doc}}


def conversation_from_doc(doc: Document) -> Conversation:
    """The client-facing Conversation of a `conversations` document."""
    last = doc.get("lastMessage")
    return Conversation(
        id=doc["_id"],
        platform=doc["platform"],
        account_id=doc["accountId"],
        title=doc.get("title"),
        last_message=message_from_doc(last) if last else None,
        unread_count=max(0, int(doc.get("unreadCount", 0))),
        updated_at=doc["updatedAt"],
        recipient=doc.get("recipient"),
    )


def unread_from_doc(doc: Document | None, by_conversation: Mapping[str, int]) -> UnreadCounts:
    """A user's unread counts from its `unread` document (zero when absent) and its
    conversations' `unreadCount`s."""
    if not doc:
        return UnreadCounts(
            total=0, by_conversation={k: v for k, v in by_conversation.items() if v}
        )
    return UnreadCounts(
        total=int(doc.get("total", 0)),
        by_platform={k: int(v) for k, v in doc.get("byPlatform", {}).items() if v},
        by_conversation={k: int(v) for k, v in by_conversation.items() if v},
    )
