"""`hub.commands`: what users ask the hub to change, keyed by the hub user id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Record, UtcDatetime


class MarkRead(Record):
    """Mark messages read.

    `message_ids` is explicit even when the user marked a whole conversation read: the
    gateway resolves the conversation's unread ids when the user acts, so replaying the
    history applies exactly what the user saw, whatever the interleaving of topics.
    """

    SCHEMA = "hub.command/1"
    schema_: Literal["hub.command/1"] = Field(default="hub.command/1", alias="schema")
    type: Literal["mark_read"] = "mark_read"
    id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=256)
    conversation_id: str | None = None
    message_ids: list[str] = Field(max_length=10_000)
    issued_at: UtcDatetime


# One command type today; a discriminated union on `type` joins here when more arrive.
Command = MarkRead
