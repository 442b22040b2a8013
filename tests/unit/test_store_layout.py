"""Mongo document layout <-> client-facing schemas."""

from __future__ import annotations

from hubcore.store import (
    conversation_from_doc,
    last_message_value,
    message_doc,
    message_from_doc,
    unread_from_doc,
)
from tests.unit.test_schemas import _raw


def test_message_doc_round_trip() -> None:
    raw = _raw()
    doc = message_doc(raw, "hub.raw-messages:0:5")
    assert doc["_id"] == raw.id and doc["origin"] == "hub.raw-messages:0:5"
    assert message_from_doc(doc) == raw.to_message()


def test_conversation_from_doc() -> None:
    raw = _raw()
    doc = message_doc(raw, "o")
    conv = conversation_from_doc(
        {
            "_id": raw.conversation_id,
            "userId": "alice",
            "platform": "telegram",
            "accountId": raw.account_id,
            "title": "Bob",
            "lastMessage": last_message_value(doc),
            "lastMessageAt": raw.sent_at,
            "unreadCount": 2,
            "updatedAt": raw.received_at,
        }
    )
    assert conv.last_message == raw.to_message()
    assert conv.unread_count == 2


def test_unread_from_doc_drops_zeros() -> None:
    counts = unread_from_doc(
        {"_id": "u", "total": 1, "byPlatform": {"slack": 1, "email": 0}}, {"c1": 1, "c2": 0}
    )
    assert counts.by_platform == {"slack": 1} and counts.by_conversation == {"c1": 1}
    assert unread_from_doc(None, {}).total == 0
