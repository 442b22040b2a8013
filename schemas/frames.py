"""User events as clients receive them: a `hub.user-events` record validated and its
frames encoded once (`/ws` and Socket.IO). One place for the gateway's pump and resumes
and the connectors' webhook deliveries (a webhook's body is the `/ws` frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

import orjson

from schemas.events import EventType

USER_EVENT_SCHEMA = "hub.user-event/1"
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


class InvalidEvent(ValueError):
    """A user-events record the gateway cannot push (bad JSON, wrong schema, wrong key)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One user event ready to push: the WebSocket frame is encoded here, exactly once."""

    partition: int
    offset: int
    type: str
    cursor: str
    text: str  # the `/ws` frame
    sio_text: str  # the Socket.IO frame: `42["<type>",{...data,"cursor"},"<cursor>"]`
    data: dict[str, Any]
    occurred_ts: float  # epoch seconds of occurredAt, for the push-latency histogram
    # The outbox items, made once per event: a burst to 5,000 sockets queues the same
    # tuple 5,000 times instead of making 5,000 (fewer young objects for the collector).
    ws_item: tuple[str, float] = field(init=False, repr=False, compare=False)
    sio_item: tuple[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ws_item", (self.text, self.occurred_ts))
        object.__setattr__(self, "sio_item", (self.sio_text, self.occurred_ts))

    def socketio_payload(self) -> dict[str, Any]:
        """Socket.IO's payload: the event's data plus its cursor (`d.message`, `d.cursor`)."""
        return {**self.data, "cursor": self.cursor}


def socketio_event(name: str, *args: Any) -> str:
    """An Engine.IO message holding a Socket.IO EVENT of the default namespace."""
    return "42" + orjson.dumps([name, *args]).decode()


def decode_event(partition: int, offset: int, key: bytes, value: bytes) -> Event:
    """Validate a `hub.user-events` record of user `key` and encode its frame.

    The frame drops the record's `schema` and `userId`; the value must name the same user
    as the key, since the key alone decides who receives it.
    """
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidEvent("not a JSON object")
    if record.get("schema") != USER_EVENT_SCHEMA:
        raise InvalidEvent(f"schema is {record.get('schema')!r}, not {USER_EVENT_SCHEMA!r}")
    event_type, event_id = record.get("type"), record.get("id")
    occurred_at, data = record.get("occurredAt"), record.get("data")
    if event_type not in EVENT_TYPES or not isinstance(event_id, str) or not event_id:
        raise InvalidEvent(f"unknown type {event_type!r} or missing id")
    if not isinstance(data, dict) or not isinstance(occurred_at, str):
        raise InvalidEvent("data must be an object and occurredAt a string")
    user_id = record.get("userId")
    if not isinstance(user_id, str) or user_id.encode() != key:
        raise InvalidEvent("userId does not match the record key")
    try:
        occurred_ts = datetime.fromisoformat(occurred_at).timestamp()
    except ValueError:
        raise InvalidEvent(f"occurredAt {occurred_at[:40]!r} is not ISO 8601") from None
    cursor = f"{partition}-{offset}"
    frame = {
        "type": event_type,
        "id": event_id,
        "cursor": cursor,
        "occurredAt": occurred_at,
        "data": data,
    }
    text = orjson.dumps(frame).decode()
    # The cursor is also the last argument: socket.io-client >= 4.6 keeps it as the offset
    # it sends back on reconnect (connection state recovery).
    sio_text = socketio_event(event_type, {**data, "cursor": cursor}, cursor)
    return Event(partition, offset, event_type, cursor, text, sio_text, data, occurred_ts)
