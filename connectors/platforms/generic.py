"""The hub's own webhook format, for any source that can sign a JSON body.

    POST /webhooks/generic/{account_id}
    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with `secret`>
    {"conversationId": "...", "messageId": "...", "sender": {"id": "...", "name": "..."},
     "text": "...", "sentAt": "2026-11-25T12:00:00Z", "conversationTitle": "..."}

`sender.name` and `conversationTitle` are optional; `sentAt` needs a timezone. Files come as
`"attachments": [{"url": "https://...", "name": "...", "mimeType": "...", "kind": "image"}]`
(only `url` required; fetched under the outbound address policy, docs/media.md).

Edits and deletes of a message sent before (same `conversationId` and `messageId`):

    {"type": "edit", "conversationId": "...", "messageId": "...", "text": "...",
     "editedAt": "2026-11-25T12:05:00Z"}
    {"type": "delete", "conversationId": "...", "messageId": "...",
     "deletedAt": "2026-11-25T12:06:00Z"}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import orjson
from pydantic import Field, ValidationError

from connectors.platforms import media
from connectors.platforms.base import (
    Change,
    WebhookOutcome,
    deleted,
    edited,
    invalid,
    raw_message,
)
from connectors.platforms.fields import json_object
from connectors.signatures import check_hub_signature
from hubcore.accounts import Account
from schemas import Sender
from schemas.attachments import MAX_INBOUND_ATTACHMENTS, AttachmentKind
from schemas.base import HubModel, UtcDatetime

SIGNATURE_HEADER = "X-Hub-Signature-256"


class GenericAttachment(HubModel):
    url: str = Field(min_length=1, max_length=4096, pattern=r"^https?://")
    name: str | None = Field(default=None, max_length=255)
    mime_type: str | None = Field(default=None, max_length=255)
    kind: AttachmentKind | None = None


class GenericMessage(HubModel):
    """The body of a generic webhook (camelCase on the wire)."""

    conversation_id: str = Field(min_length=1, max_length=1024)
    message_id: str = Field(min_length=1, max_length=1024)
    sender: Sender
    text: str = Field(max_length=1_000_000)
    sent_at: UtcDatetime
    conversation_title: str | None = Field(default=None, max_length=1024)
    attachments: list[GenericAttachment] = Field(
        default_factory=list, max_length=MAX_INBOUND_ATTACHMENTS
    )


class GenericEdit(HubModel):
    type: Literal["edit"]
    conversation_id: str = Field(min_length=1, max_length=1024)
    message_id: str = Field(min_length=1, max_length=1024)
    text: str = Field(max_length=1_000_000)
    edited_at: UtcDatetime


class GenericDelete(HubModel):
    type: Literal["delete"]
    conversation_id: str = Field(min_length=1, max_length=1024)
    message_id: str = Field(min_length=1, max_length=1024)
    deleted_at: UtcDatetime


def verify(account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """HMAC-SHA256 of the raw body with the account's `secret`."""
    check_hub_signature(
        str(account.credentials["secret"]), headers.get(SIGNATURE_HEADER.lower()), body
    )


def parse(account: Account, body: bytes, received_at: datetime) -> WebhookOutcome:
    """Exactly one message, edit or delete per request."""
    # One parse: the dict is validated and kept as `raw`. What orjson refuses goes to
    # pydantic's own parser, whose error the 400 has always named.
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    try:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "edit":
            edit = GenericEdit.model_validate(data)
            change: Change = edited(
                account,
                chat=edit.conversation_id,
                message=edit.message_id,
                text=edit.text,
                at=edit.edited_at,
            )
            return WebhookOutcome(changes=[change])
        if kind == "delete":
            gone = GenericDelete.model_validate(data)
            change = deleted(
                account, chat=gone.conversation_id, message=gone.message_id, at=gone.deleted_at
            )
            return WebhookOutcome(changes=[change])
        if isinstance(data, dict):
            msg = GenericMessage.model_validate(data)
        else:
            msg = GenericMessage.model_validate_json(body)
    except ValidationError as exc:
        raise invalid(exc) from None
    if not isinstance(data, dict):  # JSON pydantic reads and orjson does not (NaN)
        data = json_object(body)
    record = raw_message(
        account,
        chat=msg.conversation_id,
        message=msg.message_id,
        sender=msg.sender,
        text=msg.text,
        sent_at=msg.sent_at,
        received_at=received_at,
        raw=data,  # as received
        title=msg.conversation_title,
        attachments=[
            found
            for a in msg.attachments
            if (
                found := media.attachment(
                    account,
                    a.kind or media.kind_of(a.mime_type),
                    a.url,
                    mime_type=a.mime_type,
                    name=a.name,
                )
            )
        ],
    )
    return WebhookOutcome(records=[record])
