"""What every platform adapter shares: outcomes, the webhook interface, the record builder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from connectors.errors import BadPayload
from hubcore.accounts import Account
from schemas import (
    DeleteMessage,
    EditMessage,
    RawMessage,
    Sender,
    StatusReport,
    conversation_id,
    event_id,
    message_id,
)
from schemas.attachments import InboundAttachment
from schemas.commands import PlatformStatus


@dataclass(frozen=True, slots=True)
class Ignored:
    """An authentic input the hub deliberately does not store, and why (a metric label)."""

    reason: str


# What a platform says about messages already known: edits, deletes, delivery statuses.
Change = EditMessage | DeleteMessage | StatusReport
Normalized = RawMessage | Ignored | Change


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What one webhook body turned into; `reply` replaces the default 200 answer."""

    records: list[RawMessage] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    reply: Response | None = None
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def of(cls, items: list[Normalized]) -> WebhookOutcome:
        return cls(
            records=[i for i in items if isinstance(i, RawMessage)],
            ignored=[i for i in items if isinstance(i, Ignored)],
            changes=[i for i in items if isinstance(i, EditMessage | DeleteMessage | StatusReport)],
        )


Verify = Callable[[Account, Mapping[str, str], bytes, float], None]
Parse = Callable[[Account, bytes, datetime], WebhookOutcome]


@dataclass(frozen=True, slots=True)
class WebhookPlatform:
    """One platform's webhook: `verify` (raises BadSignature) runs on the raw bytes before
    `parse` (raises BadPayload). Headers are looked up by lowercase name."""

    name: str
    verify: Verify
    parse: Parse


def raw_message(
    account: Account,
    *,
    chat: str,
    message: str,
    sender: Sender | tuple[str, str | None],
    text: str,
    sent_at: datetime,
    received_at: datetime,
    raw: dict[str, Any],
    title: str | None = None,
    attachments: list[InboundAttachment] | None = None,
) -> RawMessage:
    """The normalized record of one platform message, ids derived deterministically from
    (platform, account, platform chat id, platform message id)."""
    platform = account.platform
    try:
        return RawMessage(
            id=message_id(platform, account.id, chat, message),
            user_id=account.user_id,
            platform=platform,
            account_id=account.id,
            conversation_id=conversation_id(platform, account.id, chat),
            external_conversation_id=chat,
            external_message_id=message,
            conversation_title=title[:1024] if title else None,
            sender=sender if isinstance(sender, Sender) else _sender(*sender),
            text=text,
            sent_at=sent_at,
            received_at=received_at,
            raw=raw,
            attachments=attachments or [],
        )
    except ValidationError as exc:
        raise invalid(exc) from None


def _sender(sender_id: str, name: str | None) -> Sender:
    # A long display name is not worth losing a message over; an absurd id is.
    return Sender(id=sender_id, name=name[:512] if name else None)


def invalid(exc: ValidationError) -> BadPayload:
    """`BadPayload` naming the first field pydantic refused."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return BadPayload(f"{where}: {first.get('msg', 'invalid')}")


def edited(account: Account, *, chat: str, message: str, text: str, at: datetime) -> EditMessage:
    """The edit of the platform message (chat, message): same hub id as the original."""
    msg = message_id(account.platform, account.id, chat, message)
    try:
        return EditMessage(
            id=event_id("edit", msg, at.isoformat()),
            user_id=account.user_id,
            conversation_id=conversation_id(account.platform, account.id, chat),
            message_id=msg,
            text=text,
            edited_at=at,
        )
    except ValidationError as exc:
        raise invalid(exc) from None


def deleted(account: Account, *, chat: str, message: str, at: datetime) -> DeleteMessage:
    """The delete of the platform message (chat, message)."""
    msg = message_id(account.platform, account.id, chat, message)
    try:
        return DeleteMessage(
            id=event_id("delete", msg),
            user_id=account.user_id,
            conversation_id=conversation_id(account.platform, account.id, chat),
            message_id=msg,
            deleted_at=at,
        )
    except ValidationError as exc:
        raise invalid(exc) from None


def status_report(
    account: Account, platform_id: str, status: PlatformStatus, at: datetime, detail: str | None
) -> StatusReport:
    """A delivery status of a reply the hub sent, known by the platform's id for it."""
    try:
        return StatusReport(
            id=event_id("status", account.id, platform_id, status),
            user_id=account.user_id,
            account_id=account.id,
            platform_message_id=platform_id,
            status=status,
            detail=detail,
            occurred_at=at,
        )
    except ValidationError as exc:
        raise invalid(exc) from None
