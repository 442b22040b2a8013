"""`hub.outbound`: messages for the connectors to send, keyed by the account id.

Keyed by account so one account's sends (hence one conversation's) stay in order in one
partition; streams writes a record once per accepted `send` command.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.attachments import MAX_ATTACHMENTS, OutboundAttachment
from schemas.base import Record, UtcDatetime
from schemas.messages import Platform


class OutboundMessage(Record):
    """One reply to send through the account's platform.

    `reply_to` is the platform id of the message answered (email threading: the
    `In-Reply-To`/`References` headers); `subject` the thread's title for email.
    """

    SCHEMA = "hub.outbound/1"
    schema_: Literal["hub.outbound/1"] = Field(default="hub.outbound/1", alias="schema")
    message_id: str = Field(min_length=1, max_length=128)
    client_message_id: str = Field(min_length=1, max_length=100)
    user_id: str = Field(min_length=1, max_length=256)
    platform: Platform
    account_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(min_length=1, max_length=128)
    external_conversation_id: str = Field(min_length=1, max_length=1024)
    recipient: str | None = Field(
        default=None, max_length=1024, description="Email: the address answered."
    )
    reply_to: str | None = Field(default=None, max_length=1024)
    subject: str | None = Field(default=None, max_length=1024)
    # Empty only when the reply carries attachments.
    text: str = Field(max_length=10_000)
    issued_at: UtcDatetime
    attempt: int = Field(
        default=0,
        ge=0,
        description="0 for the first send; n after the user retried a failed send n times.",
    )
    attachments: list[OutboundAttachment] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Uploaded files to send with the text (the connectors read the bytes "
        "from the blob store by `sha256`).",
    )

    @model_validator(mode="after")
    def _text_or_attachments(self) -> OutboundMessage:
        if not self.text and not self.attachments:
            raise ValueError("a reply needs text or attachments")
        return self
