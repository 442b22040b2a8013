"""The worker's most frequent user events as JSON bytes, without models on the hot path.

`new_message` (inbound), `conversation_update` and `unread_count_update` go out for nearly
every message; through their pydantic models that was three models, a validation of the
projected conversation and their serialization per message (issue 21). These build the
same bytes from fields the batch already validated; `schemas/events.py` stays their definition and
`tests/unit/test_streams_wire.py` checks every builder against the model's own JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import orjson

from hubcore.mongo import Document
from schemas import NewMessage, RawMessage, event_id
from schemas.base import wire_time
from schemas.messages import MessageStatus
from streams.batch import events
from streams.batch.state import UserState

_SCHEMA = NewMessage.SCHEMA


def new_message(user_id: str, raw: RawMessage, status: str) -> bytes:
    """`events.new_message(user_id, raw.to_message(status=status)).to_json()`; a message
    with attachments (their optional fields) goes through the model."""
    if raw.attachments:
        message = raw.to_message(status=cast(MessageStatus, status))
        return events.new_message(user_id, message).to_json()
    received = wire_time(raw.received_at)
    sender = raw.sender
    return orjson.dumps(
        {
            "schema": _SCHEMA,
            "id": event_id("new_message", raw.id),
            "userId": user_id,
            "occurredAt": received,
            "type": "new_message",
            "data": {
                "message": {
                    "id": raw.id,
                    "platform": raw.platform,
                    "accountId": raw.account_id,
                    "conversationId": raw.conversation_id,
                    "sender": {"id": sender.id, "name": sender.name},
                    "text": raw.text,
                    "sentAt": wire_time(raw.sent_at),
                    "receivedAt": received,
                    "status": status,
                    "direction": "inbound",
                    "editedAt": None,
                    "deleted": False,
                    "attachments": [],
                }
            },
        }
    )


def unread_count_update(
    user_id: str,
    state: UserState,
    changed: Mapping[str, int],
    cause_origin: str,
    occurred_at: datetime,
) -> bytes:
    """`events.unread_count_update(...)`'s JSON (`UserState.counts` inlined)."""
    return orjson.dumps(
        {
            "schema": _SCHEMA,
            "id": event_id("unread_count_update", user_id, cause_origin),
            "userId": user_id,
            "occurredAt": wire_time(occurred_at),
            "type": "unread_count_update",
            "data": {
                "unreadCounts": {
                    "total": max(0, state.total),
                    "byPlatform": {k: v for k, v in sorted(state.by_platform.items()) if v > 0},
                    "byConversation": {k: max(0, v) for k, v in sorted(changed.items())},
                },
                "version": state.version,
            },
        }
    )


def conversation_update(user_id: str, doc: Document, occurred_at: datetime) -> bytes:
    """`events.conversation_update(...).to_json()` of a projected conversation document
    (`projection.conversation_document`: `lastMessage` dumped from a validated Message).
    Anything else, a naive time included, goes through the model, which judges it."""
    last = doc.get("lastMessage")
    updated = doc.get("updatedAt")
    if not isinstance(last, dict) or not _aware(updated, last):
        return events.conversation_update(user_id, doc, occurred_at).to_json()
    sender = last["sender"]
    edited = last["editedAt"]
    version = int(doc["version"])
    return orjson.dumps(
        {
            "schema": _SCHEMA,
            "id": event_id("conversation_update", str(doc["_id"]), str(doc["version"])),
            "userId": user_id,
            "occurredAt": wire_time(occurred_at),
            "type": "conversation_update",
            "data": {
                "conversation": {
                    "id": doc["_id"],
                    "platform": doc["platform"],
                    "accountId": doc["accountId"],
                    "title": doc.get("title"),
                    "lastMessage": {
                        "id": last["id"],
                        "platform": last["platform"],
                        "accountId": last["accountId"],
                        "conversationId": last["conversationId"],
                        "sender": {"id": sender["id"], "name": sender.get("name")},
                        "text": last["text"],
                        "sentAt": wire_time(last["sentAt"]),
                        "receivedAt": wire_time(last["receivedAt"]),
                        "status": last["status"],
                        "direction": last["direction"],
                        "editedAt": None if edited is None else wire_time(edited),
                        "deleted": last["deleted"],
                        "attachments": [],
                    },
                    "unreadCount": max(0, int(doc.get("unreadCount", 0))),
                    "updatedAt": wire_time(updated),  # type: ignore[arg-type]
                    "recipient": doc.get("recipient"),
                },
                "version": version,
            },
        }
    )


def _aware(updated: Any, last: dict[str, Any]) -> bool:
    times = (updated, last.get("sentAt"), last.get("receivedAt"))
    edited = last.get("editedAt")
    return (
        all(isinstance(t, datetime) and t.tzinfo is not None for t in times)
        and (edited is None or (isinstance(edited, datetime) and edited.tzinfo is not None))
        and isinstance(last.get("sender"), dict)
        and all(k in last for k in ("id", "status", "direction", "deleted"))
        and not last.get("attachments")  # their optional fields: the model's to write
    )
