"""The table's values: per user totals, per (user, conversation) the conversation's state.

Each value carries the source watermarks that make applying a record to it idempotent, and
a version derived from them. No value grows with a user's number of conversations: a user
with 50,000 conversations has 50,001 small values, not one large one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from schemas import Message, RawMessage, UnreadCounts
from streams.batch.records import SourceRecord

# Separates the user id from the conversation id in a conversation's table key. The user
# part alone decides the key's partition (`streams.table.table.TableStateStore`).
KEY_SEPARATOR = b"\x00"


def conversation_key(user_id: str, conversation_id: str) -> bytes:
    """The table key of one conversation of a user."""
    return user_id.encode() + KEY_SEPARATOR + conversation_id.encode()


def user_part(key: bytes) -> bytes:
    """The user id's bytes of any table key (= the source records' key)."""
    return key.partition(KEY_SEPARATOR)[0]


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        # Zero entries are dropped so that live processing and a replay, which reach the
        # same numbers by different paths, store identical documents.
        counts.pop(key, None)


@dataclass(slots=True)
class Watermarked:
    """`applied` maps `<topic>:<partition>` to the highest source offset whose effect is in
    the value. It is written in the same table update as the effect, so after a crash a
    record at or below it is known to be applied already, and one above it is not. Only
    records with an effect on the value raise it, so live processing and a replay (which
    cut batches differently) reach the same watermarks."""

    applied: dict[str, int] = field(default_factory=dict)

    def applies(self, record: SourceRecord) -> bool:
        """True when `record`'s effect is not in the value yet."""
        return record.offset > self.applied.get(record.source, -1)

    def mark_applied(self, record: SourceRecord) -> None:
        """Raise the watermark of `record`'s source to it (never lowers one)."""
        if record.offset > self.applied.get(record.source, -1):
            self.applied[record.source] = record.offset

    @property
    def version(self) -> int:
        """Grows with every applied record and never shrinks: the projections' version."""
        return sum(offset + 1 for offset in self.applied.values())


@dataclass(slots=True)
class UserState(Watermarked):
    """A user's unread totals. Counts may dip below zero for a moment while a crash is being
    recovered (a read command re-applied before the message's insert); views clamp them."""

    total: int = 0
    by_platform: dict[str, int] = field(default_factory=dict)

    def add(self, platform: str, delta: int) -> None:
        """Count `delta` more (or, negative, fewer) unread messages."""
        self.total += delta
        _bump(self.by_platform, platform, delta)

    def counts(self, conversations: Mapping[str, int]) -> UnreadCounts:
        """The client view with `conversations` (id -> count) as `byConversation`."""
        return UnreadCounts(
            total=max(0, self.total),
            by_platform={k: v for k, v in sorted(self.by_platform.items()) if v > 0},
            by_conversation={k: max(0, v) for k, v in sorted(conversations.items())},
        )

    def to_value(self) -> dict[str, Any]:
        """The JSON table value."""
        return {"total": self.total, "byPlatform": self.by_platform, "applied": self.applied}

    @classmethod
    def from_value(cls, value: Mapping[str, Any] | None) -> UserState:
        """Parse a table value (None: a user not seen yet)."""
        if not value:
            return cls()
        return cls(
            total=int(value.get("total", 0)),
            by_platform={str(k): int(v) for k, v in value.get("byPlatform", {}).items()},
            applied={str(k): int(v) for k, v in value.get("applied", {}).items()},
        )


def order_key(message: Message | RawMessage) -> tuple[datetime, str]:
    """Which of a conversation's messages is newer: by `sentAt`, then id; email by when
    the hub received it, since anyone mailing an account writes its `Date:` (a far-future
    one made a stranger's mail the newest for good, and the thread's replies his)."""
    at = message.received_at if message.platform == "email" else message.sent_at
    return at, message.id


@dataclass(slots=True)
class ConversationState(Watermarked):
    """One conversation as clients see it: its unread count and its newest message."""

    unread: int = 0
    platform: str = ""
    account_id: str = ""
    title: str | None = None
    last: Message | None = None
    # What a reply needs to reach the platform: the platform's conversation id, and the
    # newest inbound message's platform id and sender (email threading and recipient).
    external_id: str | None = None
    reply_to: str | None = None
    recipient: str | None = None
    # (time, id) of the newest inbound message (see `order_key`), which `reply_to` and
    # `recipient` follow
    # apart from `last` (a reply may be newer): live and replay interleave differently.
    inbound_at: datetime | None = None
    inbound_id: str | None = None

    @property
    def count(self) -> int:
        """Unread messages, never negative."""
        return max(0, self.unread)

    def advance(self, message: Message, title: str | None) -> None:
        """Make `message` the newest one if it is newer (by `order_key`), so the order
        in which records arrive within a partition alone decides the outcome."""
        if not self.platform:
            self.platform, self.account_id, self.title = message.platform, message.account_id, title
        if self.last is None or order_key(message) > order_key(self.last):
            self.last = message
            if title is not None:
                self.title = title

    def answer(self, message: RawMessage) -> None:
        """Reply to `message` from now on if it is the newest inbound message so far."""
        key = order_key(message)
        if self.inbound_at is None or key > (self.inbound_at, self.inbound_id or ""):
            self.inbound_at, self.inbound_id = key
            self.reply_to = message.external_message_id or None
            self.recipient = message.sender.id

    def mark_read(self, message_ids: Iterable[str]) -> None:
        """One fewer unread per id; the newest message's status follows."""
        ids = list(message_ids)
        self.unread -= len(ids)
        if self.last is not None and self.last.id in ids:
            self.last = self.last.model_copy(update={"status": "read"})

    def change(self, message: Message) -> None:
        """An edited or deleted message; the newest message follows when it is this one."""
        if self.last is not None and self.last.id == message.id:
            self.last = message

    def set_status(self, message_id: str, status: str) -> None:
        """A reply's new delivery status; the newest message's status follows."""
        if self.last is not None and self.last.id == message_id:
            self.last = self.last.model_copy(update={"status": status})

    def to_value(self) -> dict[str, Any]:
        """The JSON table value."""
        return {
            "unread": self.unread,
            "platform": self.platform,
            "accountId": self.account_id,
            "title": self.title,
            "last": self.last.model_dump(mode="json", by_alias=True) if self.last else None,
            "externalId": self.external_id,
            "replyTo": self.reply_to,
            "recipient": self.recipient,
            "inboundAt": self.inbound_at.isoformat() if self.inbound_at else None,
            "inboundId": self.inbound_id,
            "applied": self.applied,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any] | None) -> ConversationState:
        """Parse a table value (None: a conversation not seen yet)."""
        if not value:
            return cls()
        last = value.get("last")
        inbound_at = value.get("inboundAt")
        return cls(
            unread=int(value.get("unread", 0)),
            platform=str(value.get("platform", "")),
            account_id=str(value.get("accountId", "")),
            title=value.get("title"),
            last=Message.model_validate(last) if last else None,
            external_id=value.get("externalId"),
            reply_to=value.get("replyTo"),
            recipient=value.get("recipient"),
            inbound_at=datetime.fromisoformat(inbound_at) if inbound_at else None,
            inbound_id=value.get("inboundId"),
            applied={str(k): int(v) for k, v in value.get("applied", {}).items()},
        )


class StateStore(Protocol):
    """Where states live: a Faust table when live, dicts during a replay."""

    def get_user(self, user_id: str) -> UserState:
        """The state of `user_id` (empty when unknown)."""
        ...

    def put_user(self, user_id: str, state: UserState) -> None:
        """Replace the state of `user_id`."""
        ...

    def get_conversation(self, user_id: str, conversation_id: str) -> ConversationState:
        """The state of one conversation of `user_id` (empty when unknown)."""
        ...

    def put_conversation(
        self, user_id: str, conversation_id: str, state: ConversationState
    ) -> None:
        """Replace the state of one conversation."""
        ...

    async def send(self) -> asyncio.Future[None]:
        """Start writing every `put` since the last call; the answer resolves once they
        are durable."""
        ...


class MemoryStateStore:
    """Plain dicts of states: unit tests and `hub replay`. Hands out copies, since callers
    mutate a state before putting it."""

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.conversations: dict[tuple[str, str], ConversationState] = {}

    def get_user(self, user_id: str) -> UserState:
        """A copy of the state of `user_id`."""
        found = self.users.get(user_id)
        return UserState.from_value(found.to_value()) if found else UserState()

    def put_user(self, user_id: str, state: UserState) -> None:
        """Replace the state of `user_id`."""
        self.users[user_id] = state

    def get_conversation(self, user_id: str, conversation_id: str) -> ConversationState:
        """A copy of the state of one conversation."""
        found = self.conversations.get((user_id, conversation_id))
        return ConversationState.from_value(found.to_value()) if found else ConversationState()

    def put_conversation(
        self, user_id: str, conversation_id: str, state: ConversationState
    ) -> None:
        """Replace the state of one conversation."""
        self.conversations[(user_id, conversation_id)] = state

    async def send(self) -> asyncio.Future[None]:
        """Nothing to wait for in memory: a resolved future."""
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
