"""`hub.presence`: the gateways' connection changes and heartbeats, the presence table's input."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Record, UtcDatetime

PresenceKind = Literal["connect", "disconnect", "heartbeat", "gateway_down", "tick"]
ClientKind = Literal["ws", "socketio"]


class PresenceRecord(Record):
    """One presence fact. `connect`/`disconnect` are keyed by the user id; a gateway's
    `heartbeat` and `gateway_down` (a clean shutdown) and a streams worker's `tick` (its
    clock, which expires silent gateways) go to every partition, keyed by the gateway id
    (`tick`: the worker's)."""

    SCHEMA = "hub.presence/1"
    schema_: Literal["hub.presence/1"] = Field(default="hub.presence/1", alias="schema")
    kind: PresenceKind
    gateway_id: str = Field(min_length=1, max_length=100)
    at: UtcDatetime
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    connection_id: str | None = Field(default=None, min_length=1, max_length=64)
    client_kind: ClientKind | None = None
