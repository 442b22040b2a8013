"""A user's unread counts with the source watermarks that make applying them idempotent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas import UnreadCounts
from streams.records import SourceRecord


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        # Zero entries are dropped so that live processing and a replay, which reach the
        # same numbers by different paths, store identical documents.
        counts.pop(key, None)


@dataclass(slots=True)
class UnreadState:
    """The table value of one user.

    `applied` maps `<topic>:<partition>` to the highest source offset whose effect is in
    the counts. It is written in the same table update as the counts, so after a crash a
    record at or below it is known to be counted already, and one above it is not.
    Counts may dip below zero for a moment while a crash is being recovered (a read
    command re-applied before the message's insert); views clamp them at zero.
    """

    total: int = 0
    by_platform: dict[str, int] = field(default_factory=dict)
    by_conversation: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)

    def applies(self, record: SourceRecord) -> bool:
        """True when `record`'s effect is not in the counts yet."""
        return record.offset > self.applied.get(record.source, -1)

    def add(self, platform: str, conversation_id: str, delta: int) -> None:
        """Count `delta` more (or, negative, fewer) unread messages in a conversation."""
        self.total += delta
        _bump(self.by_platform, platform, delta)
        _bump(self.by_conversation, conversation_id, delta)

    def mark_applied(self, offsets: Mapping[str, int]) -> None:
        """Raise the watermarks to `offsets` (never lowers one)."""
        for source, offset in offsets.items():
            if offset > self.applied.get(source, -1):
                self.applied[source] = offset

    def conversation_count(self, conversation_id: str) -> int:
        """Unread messages of one conversation, never negative."""
        return max(0, self.by_conversation.get(conversation_id, 0))

    def counts(self, changed: Iterable[str] | None = None) -> UnreadCounts:
        """The client view: totals, per platform, and the conversations in `changed`
        (all non-zero ones when None)."""
        if changed is None:
            by_conversation = {k: v for k, v in self.by_conversation.items() if v > 0}
        else:
            by_conversation = {k: self.conversation_count(k) for k in sorted(changed)}
        return UnreadCounts(
            total=max(0, self.total),
            by_platform={k: v for k, v in sorted(self.by_platform.items()) if v > 0},
            by_conversation=by_conversation,
        )

    def unread_document(self) -> dict[str, Any]:
        """The fields of this user's `unread` document (see `hubcore.store`)."""
        view = self.counts()
        return {
            "total": view.total,
            "byPlatform": view.by_platform,
            "byConversation": dict(sorted(view.by_conversation.items())),
        }

    def to_value(self) -> dict[str, Any]:
        """The JSON table value."""
        return {
            "total": self.total,
            "byPlatform": self.by_platform,
            "byConversation": self.by_conversation,
            "applied": self.applied,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any] | None) -> UnreadState:
        """Parse a table value (None: a user not seen yet)."""
        if not value:
            return cls()
        return cls(
            total=int(value.get("total", 0)),
            by_platform={str(k): int(v) for k, v in value.get("byPlatform", {}).items()},
            by_conversation={str(k): int(v) for k, v in value.get("byConversation", {}).items()},
            applied={str(k): int(v) for k, v in value.get("applied", {}).items()},
        )


class StateStore(Protocol):
    """Where user states live: a Faust table when live, a dict during a replay."""

    def get(self, user_id: str) -> UnreadState:
        """The state of `user_id` (empty when unknown)."""
        ...

    def put(self, user_id: str, state: UnreadState) -> None:
        """Replace the state of `user_id`."""
        ...

    async def flush(self) -> None:
        """Return when every `put` so far is durable."""
        ...


class MemoryStateStore:
    """A plain dict of states: unit tests and `hub replay`."""

    def __init__(self) -> None:
        self.states: dict[str, UnreadState] = {}

    def get(self, user_id: str) -> UnreadState:
        """The state of `user_id` (a copy: callers mutate it before `put`)."""
        found = self.states.get(user_id)
        return UnreadState.from_value(found.to_value()) if found else UnreadState()

    def put(self, user_id: str, state: UnreadState) -> None:
        """Replace the state of `user_id`."""
        self.states[user_id] = state

    async def flush(self) -> None:
        """Nothing to wait for in memory."""
