"""What travels to clients besides events (schemas/frames.py): cursors and control frames."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from gateway.errors import BadRequest
from schemas.frames import socketio_event
from schemas.ws import Authenticated, AuthenticatedData, Pong

_CURSOR = re.compile(r"^(\d{1,5})([-+])(\d{1,19})$")

PONG_FRAME = Pong().to_json().decode()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a user event lives in `hub.user-events`; opaque to clients."""

    partition: int
    offset: int  # the last offset already covered: a resume sends the user's later events
    # An event's cursor (`P-O`) names the user's own record at `offset`, which a resume
    # checks. A position (`P+N`, `authenticated` carries one) names no record: the user's
    # events from offset N on, on the user's own partition (a client that saw no event yet).
    anchored: bool = True

    def __str__(self) -> str:
        if self.anchored:
            return f"{self.partition}-{self.offset}"
        return f"{self.partition}+{self.offset + 1}"

    @classmethod
    def position(cls, partition: int, next_offset: int) -> Cursor:
        """The cursor of everything from `next_offset` on (no record of the user's there)."""
        return cls(partition, next_offset - 1, anchored=False)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor a client sent back; `BadRequest` when it is not one of ours."""
        match = _CURSOR.match(text)
        if match is None:
            raise BadRequest(f"malformed cursor {text[:40]!r}")
        if match[2] == "+":
            return cls.position(int(match[1]), int(match[3]))
        return cls(int(match[1]), int(match[3]))


def authenticated_frame(user_id: str, connection_id: str, cursor: str | None = None) -> str:
    """`{"type": "authenticated", "cursor", "data": {"userId", "connectionId"}}`; `cursor`
    (where the connection's events begin) when the connection's stream just began."""
    data = AuthenticatedData(user_id=user_id, connection_id=connection_id)
    frame = Authenticated(cursor=cursor, data=data)
    return frame.model_dump_json(by_alias=True, exclude_none=True)


def socketio_authenticated(user_id: str, connection_id: str, cursor: str | None = None) -> str:
    """Socket.IO's `authenticated`: `{userId, connectionId, cursor}` and the cursor as last
    argument, so socket.io-client keeps it as its offset before any event has come."""
    data = {"userId": user_id, "connectionId": connection_id}
    if cursor is None:
        return socketio_event("authenticated", data)
    return socketio_event("authenticated", {**data, "cursor": cursor}, cursor)


def error_data(code: str, message: str) -> dict[str, str]:
    """The `data` of an error event: `{"code", "message"}`."""
    return {"code": code, "message": message}


def error_frame(code: str, message: str) -> str:
    """`{"type": "error", "data": {"code", "message"}}` for protocol errors of the gateway."""
    return orjson.dumps({"type": "error", "data": error_data(code, message)}).decode()
