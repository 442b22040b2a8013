"""The worker's most frequent user events as JSON bytes, without models on the hot path.

`new_message` (inbound) and `unread_count_update` go out for nearly every message; built
through their pydantic models (three models and their serialization per message) they were
the largest share of a light-load batch's CPU (issue 21). These build the same bytes from
fields the batch already validated; `schemas/events.py` stays their definition and
`tests/unit/test_streams_wire.py` checks every builder against the model's own JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson

from schemas import NewMessage, RawMessage, event_id
from schemas.base import wire_time
from streams.state import UserState

_SCHEMA = NewMessage.SCHEMA


def new_message(user_id: str, raw: RawMessage, status: str) -> bytes:
    """`events.new_message(user_id, raw.to_message(status=status)).to_json()`."""
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
