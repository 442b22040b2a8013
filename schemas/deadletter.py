"""`hub.dead-letter`: inputs that could not be processed, with the reason and their origin."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from schemas.base import HubModel, Record, UtcDatetime


class DeadLetterSource(HubModel):
    """Where the input came from: a topic position, or a webhook of an account."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    platform: str | None = None
    account_id: str | None = None


class DeadLetter(Record):
    """A poison input. Keyed as the input was (or by account id for a webhook)."""

    SCHEMA = "hub.dead-letter/1"
    schema_: Literal["hub.dead-letter/1"] = Field(default="hub.dead-letter/1", alias="schema")
    reason: str
    error_type: str
    retriable: bool = False
    source: DeadLetterSource
    payload: str = Field(description="The input as received: UTF-8 text, or base64.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    failed_at: UtcDatetime

    @staticmethod
    def encode_payload(data: bytes | None) -> tuple[str, Literal["utf-8", "base64"]]:
        """Keep the original bytes recoverable, readable when they are text."""
        if data is None:
            return "", "utf-8"
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii"), "base64"
