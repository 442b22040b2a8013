"""Read-your-writes across push and REST: what this process pushed that the projections
may not show yet.

The streams worker sends a batch's events before its projections are written (events
first, docs/streams.md), so a client that reads REST right after an event could see the
conversation as it was before. The pump hands every `conversation_update` and
`unread_count_update` it delivers here; REST answers the newer of the projection and this
view, by the state version both carry. Only users with a connection on this process are
kept (the pump decodes only their events), each with a bounded number of conversations,
and an entry goes as soon as REST finds the projection caught up with it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemas import Conversation
from schemas.frames import Event

# The events whose state REST merges in.
FRESH_TYPES = frozenset({"conversation_update", "unread_count_update"})

# Conversations kept per user: beyond it the oldest entry goes (REST then shows that
# conversation as projected, at most the sink's lag behind).
PER_USER = 256


@dataclass(slots=True)
class UserView:
    """One user's pushed state, newer than its projection as far as this process knows."""

    conversations: OrderedDict[str, tuple[int, dict[str, Any]]] = field(default_factory=OrderedDict)
    unread: tuple[int, dict[str, Any]] | None = None


class FreshViews:
    """Per user key (bytes, as the pump routes): the pushed state REST merges in."""

    def __init__(self, per_user: int = PER_USER) -> None:
        self._per_user = per_user
        self._users: dict[bytes, UserView] = {}

    def observe(self, key: bytes, event: Event) -> None:
        """Remember a delivered event's state (only the two kinds that carry one)."""
        if event.type == "conversation_update":
            conversation = event.data.get("conversation")
            version = event.data.get("version")
            if not isinstance(conversation, dict) or not isinstance(version, int):
                return  # a worker older than versioned events: nothing to compare with
            conv_id = conversation.get("id")
            if not isinstance(conv_id, str):
                return  # not a conversation: nothing REST could answer with
            # Kept as pushed: validated only when REST reads it, off the pump's hot path.
            view = self._users.setdefault(key, UserView())
            convs = view.conversations
            if conv_id in convs and convs[conv_id][0] >= version:
                return
            convs[conv_id] = (version, conversation)
            convs.move_to_end(conv_id)
            while len(convs) > self._per_user:
                convs.popitem(last=False)
        elif event.type == "unread_count_update":
            counts, version = event.data.get("unreadCounts"), event.data.get("version")
            if isinstance(counts, dict) and isinstance(version, int):
                view = self._users.setdefault(key, UserView())
                if view.unread is None or view.unread[0] < version:
                    view.unread = (version, counts)

    def forget(self, key: bytes) -> None:
        """The user's last connection here left: events are no longer seen, so no view."""
        self._users.pop(key, None)

    def conversations(self, user_id: str) -> dict[str, tuple[int, Conversation]]:
        """Conversation id -> (version, conversation) pushed to `user_id`."""
        view = self._users.get(user_id.encode())
        out: dict[str, tuple[int, Conversation]] = {}
        for conv_id, (version, pushed) in (view.conversations if view else {}).items():
            try:
                out[conv_id] = (version, Conversation.model_validate(pushed))
            except ValidationError:
                continue  # REST answers that one from the projection
        return out

    def unread(self, user_id: str) -> tuple[int, dict[str, Any]] | None:
        """(version, `unreadCounts`) last pushed to `user_id`."""
        view = self._users.get(user_id.encode())
        return view.unread if view else None

    def settled(self, user_id: str, projected: dict[str, int]) -> None:
        """Drop the conversations whose projection (id -> version) caught up."""
        view = self._users.get(user_id.encode())
        if view is None:
            return
        for conv_id, version in projected.items():
            entry = view.conversations.get(conv_id)
            if entry is not None and entry[0] <= version:
                del view.conversations[conv_id]

    def users(self) -> int:
        """Users with a view (for tests and metrics)."""
        return len(self._users)
