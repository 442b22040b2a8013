"""What a gateway pushed, kept for REST (read-your-writes): newest version wins, bounded per
user, gone once projected or once the user's last socket here left."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.fresh import FreshViews
from schemas import (
    Conversation,
    ConversationUpdate,
    ConversationUpdateData,
    UnreadCounts,
    UnreadCountUpdate,
    UnreadCountUpdateData,
)
from schemas.frames import decode_event

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _conversation(conv_id: str, version: int, unread: int) -> bytes:
    conv = Conversation(
        id=conv_id, platform="slack", account_id="acc", unread_count=unread, updated_at=AT
    )
    event = ConversationUpdate(
        id=f"evt-{conv_id}-{version}",
        user_id="alice",
        occurred_at=AT,
        data=ConversationUpdateData(conversation=conv, version=version),
    )
    return event.to_json()


def _counts(total: int, version: int) -> bytes:
    event = UnreadCountUpdate(
        id=f"evt-u-{version}",
        user_id="alice",
        occurred_at=AT,
        data=UnreadCountUpdateData(unread_counts=UnreadCounts(total=total), version=version),
    )
    return event.to_json()


def test_the_newest_version_is_kept_and_settled_ones_go() -> None:
    fresh = FreshViews()
    for offset, value in enumerate([_conversation("c1", 5, 2), _conversation("c1", 4, 9)]):
        fresh.observe(b"alice", decode_event(0, offset, b"alice", value))
    version, conv = fresh.conversations("alice")["c1"]
    assert (version, conv.unread_count) == (5, 2)
    fresh.settled("alice", {"c1": 4})
    assert "c1" in fresh.conversations("alice")
    fresh.settled("alice", {"c1": 5})
    assert fresh.conversations("alice") == {}
    assert fresh.conversations("bob") == {}


def test_totals_keep_the_newest_and_go_with_the_last_socket() -> None:
    fresh = FreshViews()
    for offset, value in enumerate([_counts(3, 7), _counts(1, 6)]):
        fresh.observe(b"alice", decode_event(0, offset, b"alice", value))
    assert fresh.unread("alice") == (7, {"total": 3, "byPlatform": {}, "byConversation": {}})
    fresh.forget(b"alice")
    assert fresh.unread("alice") is None and fresh.users() == 0


def test_each_user_keeps_a_bounded_number_of_conversations() -> None:
    fresh = FreshViews(per_user=3)
    for n in range(5):
        fresh.observe(b"alice", decode_event(0, n, b"alice", _conversation(f"c{n}", n + 1, 1)))
    assert sorted(fresh.conversations("alice")) == ["c2", "c3", "c4"]
