"""What the fault tests share: webhooks at a steady rate (503s retried as a platform
would) and the check that the store holds every acknowledged message once, counted right."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import Account
from hubcore.mongo import Document
from tests.integration.connectors.harness import Harness, signed_delivery
from tests.streams_helpers import assert_counts_are_ground_truth, ground_truth, wait_for

RETRY_FOR = 90.0  # a platform retries a 503 for this long


class Sender:
    """Generic webhooks of one account; `acked` counts the 200s per message id."""

    def __init__(self, app: Harness, account: Account) -> None:
        self.app, self.account = app, account
        self.acked: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.first: list[tuple[float, int]] = []  # (sent at, status) of each first attempt

    async def deliver(self, n: int) -> None:
        raw, headers = signed_delivery("generic", self.account, n)
        deadline = time.monotonic() + RETRY_FOR
        first = True
        while True:
            sent = time.monotonic()
            response = await self.app.post("generic", self.account.id, raw, headers)
            self.statuses[response.status_code] += 1
            if first:
                self.first.append((sent, response.status_code))
                first = False
            assert response.status_code in (200, 503), response.text
            if response.status_code == 200:
                self.acked.update(response.json()["messageIds"])
                return
            assert time.monotonic() < deadline, "503 for longer than a platform retries"
            await asyncio.sleep(0.5)

    async def run(self, count: int, rate: float, at: Callable[[float], None]) -> None:
        """`count` webhooks, `rate` a second; `at(elapsed)` before each (to inject faults)."""
        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for n in range(count):
            at(time.monotonic() - started)
            tasks.append(asyncio.create_task(self.deliver(n)))
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        await asyncio.gather(*tasks)


async def assert_stored_once(db: AsyncDatabase[Document], ids: list[str], user: str) -> None:
    """The store ends up with exactly `ids` (each once) and unread counts equal to its truth."""

    async def stored() -> bool:
        return await db["messages"].count_documents({}) >= len(ids)

    await wait_for(stored, timeout=120, what="every acknowledged message stored")
    assert await db["messages"].count_documents({}) == len(ids)
    assert await db["messages"].count_documents({"_id": {"$in": ids}}) == len(ids)

    await assert_counts_are_truth(db, {user}, len(ids))


async def assert_counts_are_truth(db: AsyncDatabase[Document], users: set[str], total: int) -> None:
    """With every message stored (and none read), the projected counts settle on the
    store's own count of unread messages, which adds up to `total`."""
    expected = {user: await ground_truth(db, user) for user in users}
    assert sum(sum(convs.values()) for convs in expected.values()) == total
    await assert_counts_are_ground_truth(db, expected)
