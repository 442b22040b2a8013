"""Edits and deletes of messages sent before, as each platform's webhook says them:
Telegram `edited_message`, Slack `message_changed`/`message_deleted`, generic edit/delete."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hub.demo.payloads import (
    FakeMessage,
    WebhookRequest,
    iso,
    signed_generic,
    signed_slack,
    signed_telegram,
    slack_ts,
    telegram_message,
)
from hubcore.accounts import Account


def telegram_edit(
    account_id: str, credentials: dict[str, Any], msg: FakeMessage, text: str, update_id: int
) -> WebhookRequest:
    """`edited_message`: the message as it is now, with its `edit_date`."""
    edited = telegram_message(replace(msg, text=text))
    edited["edit_date"] = int(datetime.now(UTC).timestamp())
    return signed_telegram(
        account_id, credentials, {"update_id": update_id, "edited_message": edited}
    )


def slack_change(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage, text: str
) -> WebhookRequest:
    """A `message_changed` event: the new message, and the old one as `previous_message`."""
    ts, now = slack_ts(msg), f"{datetime.now(UTC).timestamp():.6f}"
    old = {"type": "message", "user": msg.sender_id, "text": msg.text, "ts": ts}
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": msg.chat_id,
        "hidden": True,
        "message": {**old, "text": text, "edited": {"user": msg.sender_id, "ts": now}},
        "previous_message": old,
        "ts": now,
        "event_ts": now,
        "channel_type": "channel",
    }
    return signed_slack(account_id, external_id, credentials, event, f"Ev{msg.message_id}e{now}")


def slack_delete(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """A `message_deleted` event naming the message's `ts` as `deleted_ts`."""
    now = f"{datetime.now(UTC).timestamp():.6f}"
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": msg.chat_id,
        "hidden": True,
        "deleted_ts": slack_ts(msg),
        "ts": now,
        "event_ts": now,
        "channel_type": "channel",
    }
    return signed_slack(account_id, external_id, credentials, event, f"Ev{msg.message_id}d{now}")


def generic_edit(
    account_id: str, credentials: dict[str, Any], msg: FakeMessage, text: str
) -> WebhookRequest:
    """The generic format's edit (docs/platforms.md)."""
    payload = {
        "type": "edit",
        "conversationId": msg.chat_id,
        "messageId": msg.message_id,
        "text": text,
        "editedAt": iso(datetime.now(UTC)),
    }
    return signed_generic(account_id, credentials, payload)


def generic_delete(
    account_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """The generic format's delete (docs/platforms.md)."""
    payload = {
        "type": "delete",
        "conversationId": msg.chat_id,
        "messageId": msg.message_id,
        "deletedAt": iso(datetime.now(UTC)),
    }
    return signed_generic(account_id, credentials, payload)


def change_request(
    account: Account, msg: FakeMessage, text: str | None, update_id: int
) -> WebhookRequest | None:
    """An edit to `text` (a delete when None) of `msg` on the account's platform; None
    where the platform has no such webhook (WhatsApp tells neither)."""
    creds = account.credentials
    if account.platform == "telegram":
        return None if text is None else telegram_edit(account.id, creds, msg, text, update_id)
    if account.platform == "slack":
        if text is None:
            return slack_delete(account.id, account.external_id, creds, msg)
        return slack_change(account.id, account.external_id, creds, msg, text)
    if account.platform == "generic":
        if text is None:
            return generic_delete(account.id, creds, msg)
        return generic_edit(account.id, creds, msg, text)
    return None
