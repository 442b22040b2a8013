"""What one connectors process shares between requests: the account cache and the runtime."""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from connectors.errors import StoreUnavailable
from connectors.publisher import Publisher
from hubcore.accounts import Account, AccountStore
from hubcore.mongo import Document
from hubcore.ratelimit import RateLimiter
from hubcore.sealing import UnreadableCredentials
from hubcore.settings import Settings

if TYPE_CHECKING:
    from connectors.pollers.supervisor import PollerSupervisor


# Ids the store hands out are `acc_` + hex; anything far from that is not worth a read.
_PLAUSIBLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class AccountCache:
    """A small TTL cache over `AccountStore.get`, misses included (so unknown ids cannot
    flood the store); a deleted or new account takes effect within `ttl` seconds, or once
    the store answers again: while it is down, an expired entry still serves.

    Concurrent misses of one id share one read: when an entry expires under load, every
    request in flight for that account would otherwise query the store at once.
    """

    def __init__(self, store: AccountStore, ttl: float, size: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, Account | None]] = OrderedDict()
        self._reads: dict[str, asyncio.Future[Account | None]] = {}

    async def get(self, account_id: str) -> Account | None:
        """The account, or None; `StoreUnavailable` when the store does not answer."""
        if not _PLAUSIBLE_ID.match(account_id):
            return None
        hit = self._entries.get(account_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._reads.get(account_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read(account_id))
            self._reads[account_id] = pending
            pending.add_done_callback(lambda f: self._read_done(account_id, f))
        # Shielded: one waiter going away (a client hanging up) must not cancel the others'.
        return await asyncio.shield(pending)

    def _read_done(self, account_id: str, read: asyncio.Future[Account | None]) -> None:
        self._reads.pop(account_id, None)
        if not read.cancelled():
            read.exception()  # retrieved: every waiter may have gone before it failed

    async def _read(self, account_id: str) -> Account | None:
        now = time.monotonic()
        try:
            account = await self.store.get(account_id)
        except PyMongoError as exc:
            stale = self._entries.get(account_id)
            if stale is not None:
                # A store outage must not stop ingest: Kafka takes what the last answer allowed.
                return stale[1]
            raise StoreUnavailable(f"the account store did not answer: {exc}") from None
        except UnreadableCredentials as exc:  # a key missing from HUB_CREDENTIALS_KEY
            raise StoreUnavailable(str(exc)) from None
        if self.ttl > 0:
            self._entries[account_id] = (now + self.ttl, account)
            self._entries.move_to_end(account_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return account


@dataclass(slots=True)
class Runtime:
    """Settings, store, producer and pollers of one connectors process."""

    settings: Settings
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    publisher: Publisher
    accounts: AccountCache
    pollers: PollerSupervisor | None = None
    webhook_limit: RateLimiter | None = None

    def __post_init__(self) -> None:
        if self.webhook_limit is None:
            self.webhook_limit = RateLimiter(self.settings.rate_webhooks_per_account)
