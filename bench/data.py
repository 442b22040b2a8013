"""Deterministic benchmark traffic: generic webhook bodies, raw messages, user events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from connectors.signatures import hmac_sha256_hex
from schemas import NewMessage, NewMessageData, RawMessage, Sender, conversation_id, message_id
from schemas.base import utc_now
from schemas.ids import event_id

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TEXT = "Hi! My order #{n} has not arrived yet, could you check where it is? Thanks."


def webhook_body(run: str, n: int, conversations: int = 100, text: str | None = None) -> bytes:
    """A generic webhook body; (`run`, `n`) makes its message id unique."""
    body: dict[str, Any] = {
        "conversationId": f"c{n % conversations}",
        "messageId": f"{run}-{n}",
        "sender": {"id": f"cust-{n % conversations}", "name": "Ada Lovelace"},
        "text": text if text is not None else TEXT.format(n=n),
        "sentAt": (T0 + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z"),
        "conversationTitle": f"Order {n % conversations}",
    }
    return orjson.dumps(body)


def signature_header(secret: str, body: bytes) -> dict[str, str]:
    """The generic webhook's `X-Hub-Signature-256` header for `body`."""
    return {"X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body), **_JSON}


_JSON = {"Content-Type": "application/json"}


def raw_message(n: int, users: int, conversations: int) -> RawMessage:
    """Message `n` of a stream spread round-robin over `users`, each with `conversations`
    chats; what the connectors would produce for a generic webhook."""
    user = f"user{n % users:05d}"
    account = f"acc_bench_{user}"
    chat = f"c{(n // users) % conversations}"
    sent = T0 + timedelta(milliseconds=n)
    body = orjson.loads(webhook_body("p2", n, conversations))
    return RawMessage(
        id=message_id("generic", account, chat, str(n)),
        user_id=user,
        platform="generic",
        account_id=account,
        conversation_id=conversation_id("generic", account, chat),
        external_conversation_id=chat,
        external_message_id=str(n),
        conversation_title=f"Order {chat}",
        sender=Sender(id=f"cust-{chat}", name="Ada Lovelace"),
        text=TEXT.format(n=n),
        sent_at=sent,
        received_at=sent + timedelta(milliseconds=40),
        raw=body,
    )


def new_message_event(user_id: str, n: int) -> NewMessage:
    """The `new_message` user event streams would emit for message `n` of `user_id`."""
    raw = raw_message(n, 1, 4)
    message = raw.to_message().model_copy(update={"id": f"msg_{user_id}_{n}"})
    return NewMessage(
        id=event_id("new_message", message.id),
        user_id=user_id,
        occurred_at=utc_now(),
        data=NewMessageData(message=message),
    )
