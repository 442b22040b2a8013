"""What one connectors process shares between requests: the account cache and the runtime."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from starlette.requests import Request

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
    the store answers again: while it is down, an expired entry still serves."""

    def __init__(self, store: AccountStore, ttl: float, size: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, Account | None]] = OrderedDict()

    async def get(self, account_id: str) -> Account | None:
        """The account, or None; `StoreUnavailable` when the store does not answer."""
        if not _PLAUSIBLE_ID.match(account_id):
            return None
        now = time.monotonic()
        hit = self._entries.get(account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            account = await self.store.get(account_id)
        except PyMongoError as exc:
            if hit is not None:
                # A store outage must not stop ingest: Kafka takes what the last answer allowed.
                return hit[1]
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


async def runtime(request: Request) -> Runtime:
    """FastAPI dependency: this process's runtime (async: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hop on every webhook)."""
    rt: Runtime = request.app.state.runtime
    return rt
