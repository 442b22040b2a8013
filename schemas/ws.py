"""WebSocket frames of `GET /ws`: what clients send and what the server answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from schemas.base import HubModel, UtcDatetime
from schemas.events import EventType


class Authenticate(HubModel):
    """First client frame: a JWT, and optionally the last cursor seen to resume from."""

    type: Literal["authenticate"]
    token: str = Field(min_length=1, max_length=16 * 1024)
    resume_from: str | None = Field(default=None, max_length=256)


class Ping(HubModel):
    type: Literal["ping"]


ClientFrame = Annotated[Authenticate | Ping, Field(discriminator="type")]
CLIENT_FRAME_ADAPTER: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


class AuthenticatedData(HubModel):
    user_id: str
    connection_id: str


class Authenticated(HubModel):
    """The answer to `authenticate`. `cursor`: where this connection's events begin (a
    resume from it misses nothing); absent when answering a token refresh."""

    type: Literal["authenticated"] = "authenticated"
    cursor: str | None = None
    data: AuthenticatedData


class Pong(HubModel):
    type: Literal["pong"] = "pong"


class EventFrame(HubModel):
    """A user event as pushed: `cursor` finds the record in Kafka again, for resume."""

    type: EventType
    id: str
    cursor: str
    occurred_at: UtcDatetime
    data: dict[str, Any]
