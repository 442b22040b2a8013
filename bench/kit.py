"""The setup of the scenarios in which the hub calls a receiver of the benchmark's own
(N1: a push service, `bench/push_cost.py`; W1: webhook endpoints, `bench/w1_webhooks.py`):
a stage whose settings let the hub call loopback over plain HTTP, its database open, the
users, and the `new_message` user events they are sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from bench.stage import Stage, stage
from hubcore.mongo import Document, create_client, database
from hubcore.settings import Settings
from schemas import Message, NewMessage, NewMessageData, Sender
from schemas.base import utc_now
from schemas.messages import Platform


@dataclass(frozen=True)
class Receiving:
    """A stage set up for a local receiver; `settings` allow calling it."""

    stage: Stage
    settings: Settings
    db: AsyncDatabase[Document]
    users: list[str]

    def env(self, **extra: str) -> dict[str, str]:
        """A hub child process's environment, also allowed to call the receiver."""
        return self.stage.env(
            HUB_OUTBOUND_ALLOWED_HOSTS="127.0.0.1", HUB_OUTBOUND_ALLOW_PLAINTEXT="true", **extra
        )


@contextlib.asynccontextmanager
async def receiving(
    base: Settings, label: str, users: int, **settings: Any
) -> AsyncIterator[Receiving]:
    """A fresh stage on `base`'s servers (cleaned after), its settings with `settings` and
    the receiver's host (127.0.0.1, plain HTTP) allowed, and `users` user ids."""
    async with stage(base, label) as st:
        local = st.settings.model_copy(
            update={"outbound_allowed_hosts": ["127.0.0.1"], "outbound_allow_plaintext": True}
            | settings
        )
        client = create_client(local.mongo_url)
        try:
            names = [f"user{n:02d}" for n in range(users)]
            yield Receiving(st, local, database(client, local), names)
        finally:
            await client.close()


def user_event(
    user: str, n: int, *, conversation: str, text: str, platform: Platform = "generic"
) -> NewMessage:
    """The `new_message` user event of message `n` to `user`, inbound, sent now."""
    now = utc_now()
    message = Message(
        id=f"msg_{user}_{n}",
        platform=platform,
        account_id="acc_bench",
        conversation_id=conversation,
        sender=Sender(id="U1", name="Ann"),
        text=text,
        sent_at=now,
        received_at=now,
    )
    return NewMessage(
        id=f"evt_{user}_{n}", user_id=user, occurred_at=now, data=NewMessageData(message=message)
    )
