"""What one connectors process shares between requests: the account cache and the runtime."""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

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


# At most this many other accounts ride along on one read, and this many cached entries
# are looked at to find them: the cost of a miss stays bounded whatever the cache holds.
_RIDE_ALONG = 500
_SCAN = 2_000

Reading: TypeAlias = "asyncio.Future[dict[str, Account | UnreadableCredentials]]"


@dataclass(slots=True)
class _Entry:
    expires: float
    account: Account | None
    used: bool = False  # asked for since it was read: worth reading again with others


class AccountCache:
    """A small TTL cache over the account store, misses included (so unknown ids cannot
    flood the store); a deleted or new account takes effect within `ttl` seconds, or once
    the store answers again: while it is down, an expired entry still serves.

    Concurrent misses of one id share one read: when an entry expires under load, every
    request in flight for that account would otherwise query the store at once. A read
    also takes along the cached accounts in use that expire within half a `ttl`, so their
    expiries fall together and a busy process makes about one store read per half `ttl`
    instead of one per account and `ttl` (a round trip costs ~20 webhooks' CPU).
    """

    def __init__(self, store: AccountStore, ttl: float, size: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl
        self.size = size
        # Ordered by expiry: every read moves its entries to the end with the same ttl.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._reads: dict[str, Reading] = {}

    async def get(self, account_id: str) -> Account | None:
        """The account, or None; `StoreUnavailable` when the store does not answer."""
        if not _PLAUSIBLE_ID.match(account_id):
            return None
        hit = self._entries.get(account_id)
        if hit is not None and hit.expires > time.monotonic():
            hit.used = True
            return hit.account
        pending = self._reads.get(account_id)
        if pending is None:
            ids = [account_id, *self._due()]
            pending = asyncio.ensure_future(self._read(ids))
            for one in ids:
                self._reads[one] = pending
            pending.add_done_callback(lambda f: self._read_done(ids, f))
        # Shielded: one waiter going away (a client hanging up) must not cancel the others'.
        try:
            found = await asyncio.shield(pending)
        except PyMongoError as exc:
            stale = self._entries.get(account_id)
            if stale is not None:
                # A store outage must not stop ingest: Kafka takes what the last answer allowed.
                return stale.account
            raise StoreUnavailable(f"the account store did not answer: {exc}") from None
        account = found.get(account_id)
        if isinstance(account, UnreadableCredentials):  # a key missing from HUB_CREDENTIALS_KEY
            raise StoreUnavailable(str(account))
        return account

    def _due(self) -> list[str]:
        """Cached ids in use that expire within half a ttl and no read is under way for."""
        if self.ttl <= 0:
            return []
        soon = time.monotonic() + self.ttl / 2
        due: list[str] = []
        for scanned, (key, entry) in enumerate(self._entries.items()):
            if entry.expires > soon or scanned >= _SCAN or len(due) >= _RIDE_ALONG:
                break
            if entry.used and key not in self._reads:
                due.append(key)
        return due

    def _read_done(self, ids: list[str], read: Reading) -> None:
        for one in ids:
            if self._reads.get(one) is read:
                del self._reads[one]
        if not read.cancelled():
            read.exception()  # retrieved: every waiter may have gone before it failed

    async def _read(self, ids: list[str]) -> dict[str, Account | UnreadableCredentials]:
        now = time.monotonic()
        found = await self.store.get_many(ids)
        if self.ttl > 0:
            entries = self._entries
            for one in ids:
                account = found.get(one)
                if isinstance(account, UnreadableCredentials):
                    continue  # not cached, like a failed read: asked again next time
                entries[one] = _Entry(now + self.ttl, account)
                entries.move_to_end(one)
            while len(entries) > self.size:
                entries.popitem(last=False)
        return found


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
