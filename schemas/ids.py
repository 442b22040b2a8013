"""Deterministic ids: the same platform message always maps to the same hub id."""

from __future__ import annotations

import hashlib
import secrets


def _digest(*parts: str) -> str:
    # A separator that cannot occur in the parts keeps ("a", "bc") and ("ab", "c") apart.
    joined = "\x1f".join(parts).encode()
    return hashlib.sha256(joined).hexdigest()[:32]


def conversation_id(platform: str, account_id: str, external_conversation_id: str) -> str:
    """The hub id of a chat, channel or thread of one connected account."""
    return "conv_" + _digest("conversation", platform, account_id, external_conversation_id)


def message_id(
    platform: str, account_id: str, external_conversation_id: str, external_message_id: str
) -> str:
    """The hub id of one platform message; a platform retry or a poller sees the same id."""
    return "msg_" + _digest(
        "message", platform, account_id, external_conversation_id, external_message_id
    )


def outbound_message_id(user_id: str, conversation_id: str, client_message_id: str) -> str:
    """The hub id of a user's reply: one per (conversation, client message id)."""
    return "msg_" + _digest("outbound", user_id, conversation_id, client_message_id)


def event_id(event_type: str, *source: str) -> str:
    """A user event's id, derived from what caused it, so a reprocessed event keeps its id."""
    return "evt_" + _digest("event", event_type, *source)


def account_id() -> str:
    """A fresh, unguessable id for a newly connected platform account."""
    return "acc_" + secrets.token_hex(12)
