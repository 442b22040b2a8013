"""`hub.commands`: what users and platforms ask the hub to change, keyed by the hub user id.

Every command shares the `hub.command/1` tag and is told apart by `type`: a consumer
that predates a type dead-letters it rather than guessing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from schemas.attachments import (
    MAX_ATTACHMENTS,
    AttachmentStatus,
    FailedReason,
    OutboundAttachment,
)
from schemas.base import Record, UtcDatetime

OutboundStatus = Literal["pending", "sent", "delivered", "read", "failed"]
PlatformStatus = Literal["sent", "delivered", "read", "failed"]


class _CommandBase(Record):
    SCHEMA = "hub.command/1"
    schema_: Literal["hub.command/1"] = Field(default="hub.command/1", alias="schema")
    id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=256)


class MarkRead(_CommandBase):
    """Mark messages read.

    `message_ids` is explicit even when the user marked a whole conversation read: the
    gateway resolves the conversation's unread ids when the user acts, so replaying the
    history applies exactly what the user saw, whatever the interleaving of topics.
    """

    type: Literal["mark_read"] = "mark_read"
    conversation_id: str | None = None
    message_ids: list[str] = Field(max_length=10_000)
    issued_at: UtcDatetime


class SendMessage(_CommandBase):
    """A user's reply into a conversation. `message_id` derives from the user, the
    conversation and `client_message_id` (`schemas.ids.outbound_message_id`): the same
    client id again is the same message, never a second send."""

    type: Literal["send"] = "send"
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    client_message_id: str = Field(min_length=1, max_length=100)
    # Empty only when the reply carries attachments.
    text: str = Field(max_length=10_000)
    issued_at: UtcDatetime
    attachments: list[OutboundAttachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @model_validator(mode="after")
    def _text_or_attachments(self) -> SendMessage:
        if not self.text and not self.attachments:
            raise ValueError("a reply needs text or attachments")
        return self


class SendResult(_CommandBase):
    """What the connectors' sender learnt of one outbound message.

    `sent` carries the platform's id; `failed` a `detail` for the user. `ambiguous` is
    true when the platform may or may not have the message (a timeout after the request
    left): it is then not sent again where the platform has no idempotency key.
    """

    type: Literal["send_result"] = "send_result"
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=128)
    status: Literal["sent", "failed"]
    platform_message_id: str | None = Field(default=None, max_length=1024)
    detail: str | None = Field(default=None, max_length=2000)
    attempts: int = Field(ge=0)
    ambiguous: bool = False
    occurred_at: UtcDatetime


class StatusReport(_CommandBase):
    """A platform's delivery status of a message the hub sent (WhatsApp `statuses`).

    `message_id` is the hub's id when the connectors know it from their send ledger;
    else the projection resolves `platform_message_id`."""

    type: Literal["status_report"] = "status_report"
    account_id: str = Field(min_length=1, max_length=128)
    platform_message_id: str = Field(min_length=1, max_length=1024)
    message_id: str | None = Field(default=None, max_length=128)
    status: PlatformStatus
    detail: str | None = Field(default=None, max_length=2000)
    occurred_at: UtcDatetime


class EditMessage(_CommandBase):
    """A platform-side edit of a message the hub stored: the new text."""

    type: Literal["edit"] = "edit"
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    text: str
    edited_at: UtcDatetime


class DeleteMessage(_CommandBase):
    """A platform-side delete: the stored message keeps its id and loses its text."""

    type: Literal["delete"] = "delete"
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    deleted_at: UtcDatetime


class AttachmentResult(_CommandBase):
    """The media fetcher's result for one attachment of a stored message: `ready` with
    what the bytes turned out to be, or `failed` with a reason (docs/media.md)."""

    type: Literal["attachment"] = "attachment"
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    attachment_id: str = Field(min_length=1, max_length=128)
    index: int = Field(ge=0, lt=100)
    status: AttachmentStatus
    reason: FailedReason | None = None
    mime_type: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, ge=0)
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    occurred_at: UtcDatetime


AnyCommand = Annotated[
    MarkRead
    | SendMessage
    | SendResult
    | StatusReport
    | EditMessage
    | DeleteMessage
    | AttachmentResult,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)

# What streams consumes today; the union replaces it once streams applies every type.
Command = MarkRead


def parse_command(data: bytes | str) -> AnyCommand:
    """Validate a `hub.commands` value into its typed model."""
    return COMMAND_ADAPTER.validate_json(data)
