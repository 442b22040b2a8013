"""Runs one poller per poll-mode account, following account creations and deletions.

Pollers run in every connectors process that has `HUB_CONNECTORS_POLLERS=true` (the
default): run them in one replica only, or the same messages are read twice (harmless
for the hub - same ids - but it doubles the platform API calls, and Telegram allows one
getUpdates reader per bot).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from connectors.pollers.base import Poller, PollState
from connectors.pollers.email import EmailPoller
from connectors.pollers.telegram import TelegramPoller
from connectors.publisher import Publisher
from hubcore.accounts import Account, AccountStore
from hubcore.errors import HubError
from hubcore.mongo import Document
from hubcore.settings import Settings

log = structlog.get_logger("connectors.pollers")


class PollerSupervisor:
    """Keeps the set of running pollers equal to the set of poll-mode accounts."""

    def __init__(
        self, settings: Settings, db: AsyncDatabase[Document], publisher: Publisher
    ) -> None:
        self.settings = settings
        self.accounts = AccountStore(db, settings)
        self.state = PollState(db)
        self.publisher = publisher
        self.pollers: dict[str, Poller] = {}
        self._http = httpx.AsyncClient()
        self._task: asyncio.Task[None] | None = None
        self._unusable: set[str] = set()

    async def start(self) -> None:
        """Begin following the accounts in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="poller-supervisor")

    async def stop(self) -> None:
        """Stop following and stop every poller (each after its current commit)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(p.stop() for p in self.pollers.values()))
        self.pollers.clear()
        await self._http.aclose()

    async def _follow(self) -> None:
        while True:
            try:
                await self.sync()
            except (PyMongoError, HubError) as exc:  # HubError: credentials that do not open
                log.warning("cannot read the poll-mode accounts", error=str(exc))
            await asyncio.sleep(self.settings.connectors_accounts_refresh)

    async def sync(self) -> None:
        """Start pollers for new poll-mode accounts, stop those of removed ones."""
        wanted = {a.id: a for a in await self.accounts.list(mode="poll")}
        for account_id in [a for a in self.pollers if a not in wanted]:
            await self.pollers.pop(account_id).stop()
        for account_id, account in wanted.items():
            running = self.pollers.get(account_id)
            if running is not None and running.running:
                continue
            poller = self._poller(account)
            if poller is not None:
                self.pollers[account_id] = poller
                poller.start()

    def _poller(self, account: Account) -> Poller | None:
        try:
            if account.platform == "telegram":
                return TelegramPoller(
                    account, self.settings, self.publisher, self.state, self._http
                )
            if account.platform == "email":
                return EmailPoller(account, self.settings, self.publisher, self.state)
            problem = f"no poller for platform {account.platform}"
        except HubError as exc:
            problem = str(exc)
        if account.id not in self._unusable:  # say it once, not every refresh
            self._unusable.add(account.id)
            log.warning("account cannot be polled", account_id=account.id, problem=problem)
        return None
