"""The notifier's decisions over an in-memory store and a manual clock: the paths the
integration tests reach only slowly (stale events, the windows' bound, the store's read
count per user)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from connectors.push import notifier as notifier_module
from connectors.push.notifier import Notifier
from hubcore.push_store import Presence, Subscription, UserPushSettings
from hubcore.settings import Settings
from schemas import Message, NewMessage, NewMessageData, Sender
from schemas.base import utc_now


class Store:
    """PushStore's reads, in memory, counting the subscription reads."""

    def __init__(self, subscribed: set[str]) -> None:
        self.subscribed = subscribed
        self.reads = 0
        self.presence = Presence()

    async def of_user(self, user: str, limit: int) -> list[Subscription]:
        self.reads += 1
        if user not in self.subscribed:
            return []
        return [Subscription(f"s-{user}", user, "https://push.test/x", b"k", b"a")]

    async def user_settings(self, user: str) -> UserPushSettings:
        return UserPushSettings()

    async def is_muted(self, user: str, conv: str) -> bool:
        return False

    async def presence_of(self, user: str) -> Presence:
        return self.presence


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, sub: Subscription, push: Any) -> None:
        self.sent.append((sub.user_id, push.payload))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(
    user: str, n: int, conv: str = "c", age: float = 0, direction: str = "inbound"
) -> NewMessage:
    at = utc_now() - timedelta(seconds=age)
    message = Message(
        id=f"m{n}", platform="generic", account_id="a", conversation_id=conv,
        sender=Sender(id="s"), text=f"t{n}", sent_at=at, received_at=at, direction=direction,
    )  # fmt: skip
    return NewMessage(
        id=f"e{n}", user_id=user, occurred_at=at, data=NewMessageData(message=message)
    )


def _notifier(store: Store, sender: FakeSender, clock: Clock, **settings: Any) -> Notifier:
    s = Settings(_env_file=None, push_grace=0, **settings)
    return Notifier(s, store, sender, clock=clock)  # type: ignore[arg-type]


async def test_stale_outbound_and_unsubscribed_users_cost_no_push() -> None:
    store, sender, clock = Store({"ann"}), FakeSender(), Clock()
    n = _notifier(store, sender, clock)
    assert await n.handle(_event("ann", 1, age=3600)) == "stale"
    assert await n.handle(_event("ann", 2, direction="outbound")) == "outbound"
    assert await n.handle(_event("bob", 3)) == "no_subscription"
    assert await n.handle(_event("bob", 4)) == "no_subscription"
    assert store.reads == 1  # bob's subscriptions read once, then cached
    clock.now += notifier_module.SUBSCRIPTIONS_TTL + 1
    assert await n.handle(_event("bob", 5)) == "no_subscription"
    assert store.reads == 2
    assert await n.handle(_event("ann", 6)) == "sent"
    await n.idle()
    assert [user for user, _ in sender.sent] == ["ann"]
    assert not [k for k in n.windows if k[0] == "bob"]  # no window for a user without one


async def test_windows_are_bounded_the_oldest_dropped_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notifier_module, "MAX_WINDOWS", 3)
    store, sender, clock = Store({"ann"}), FakeSender(), Clock()
    n = _notifier(store, sender, clock, push_interval=60)
    for i in range(5):
        assert await n.handle(_event("ann", i, conv=f"c{i}")) == "sent"
    assert len(n.windows) <= 3
    assert ("ann", "c4") in n.windows and ("ann", "c0") not in n.windows
    await n.close()


async def _recheck(n: Notifier) -> None:
    """Run the held windows' timers now (the manual clock does not move the loop's) and
    their flushes to the end."""
    armed = [w for w in n.windows.values() if w.timer is not None]
    assert armed, "nothing held for a recheck"
    for window in armed:
        assert window.timer is not None
        window.timer.cancel()
        n._due(window)
    await n.idle()


async def test_a_message_judged_online_is_looked_at_again() -> None:
    """The presence projection may lag the message: shown online when it came, a user
    whose last device had gone by the recheck gets it after the grace; one still online
    does not (counted `online` again)."""
    decisions: list[str] = []
    store, sender, clock = Store({"ann"}), FakeSender(), Clock()
    s = Settings(_env_file=None, push_grace=0)
    n = Notifier(s, store, sender, clock=clock, observer=lambda _, d: decisions.append(d))  # type: ignore[arg-type]
    store.presence = Presence(online=True, last_seen=utc_now())
    assert await n.handle(_event("ann", 1, conv="still")) == "online"
    await _recheck(n)
    assert decisions == ["online", "online"] and not sender.sent

    assert await n.handle(_event("ann", 2, conv="left")) == "online"
    store.presence = Presence(online=False, last_seen=utc_now() - timedelta(seconds=60))
    await _recheck(n)
    assert decisions[-1] == "sent"
    assert [user for user, _ in sender.sent] == ["ann"]
    assert b"t2" in sender.sent[0][1]
    await n.close()
