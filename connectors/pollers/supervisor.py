"""Runs one poller per poll-mode account, following account creations and deletions.

Every connectors process with `HUB_CONNECTORS_POLLERS=true` (the default) takes part;
an account is polled by the one holding its lease (connectors/pollers/lease.py), so
replicas never read the same mailbox or bot twice (Telegram allows one getUpdates reader
per bot), and the accounts of a replica that died move to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import httpx
import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from connectors.pollers.base import Poller, PollState
from connectors.pollers.email import EmailPoller
from connectors.pollers.lease import Leases, owner_id
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
        self.leases = Leases(db, owner_id(), settings.poll_lease_ttl)
        self._accounts: dict[str, Account] = {}
        self._read_at = -math.inf
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
        with contextlib.suppress(PyMongoError):  # unreleased, they expire after the TTL
            for poller in self.pollers.values():
                await self.leases.release(poller.key)
        self.pollers.clear()
        await self._http.aclose()

    async def _follow(self) -> None:
        while True:
            try:
                await self.sync(reread=False)
            except (PyMongoError, HubError) as exc:  # HubError: credentials that do not open
                log.warning("cannot read the poll-mode accounts or leases", error=str(exc))
            except Exception:  # a bug must not end polling for every account
                log.exception("poller supervision failed")
            # Renew held leases well before they expire.
            s = self.settings
            await asyncio.sleep(min(s.poll_lease_ttl / 3, s.connectors_accounts_refresh))

    async def sync(self, reread: bool = True) -> None:
        """Re-read the poll-mode accounts (or only when due, without `reread`); poll those
        whose lease this process holds and stop polling the others."""
        now = time.monotonic()
        if reread or now - self._read_at >= self.settings.connectors_accounts_refresh:
            self._accounts = {a.id: a for a in await self.accounts.list(mode="poll")}
            self._read_at = now
        for account_id in [a for a in self.pollers if a not in self._accounts]:
            poller = self.pollers.pop(account_id)
            await poller.stop()
            await self.leases.release(poller.key)
        for account_id, account in self._accounts.items():
            await self._lead(account_id, account)

    async def _lead(self, account_id: str, account: Account) -> None:
        token = await self.leases.hold(f"{account.platform}:{account_id}")
        running = self.pollers.get(account_id)
        if running is not None:
            if token is not None and running.running and running.fence == token:
                return
            await self.pollers.pop(account_id).stop()
        if token is None:
            return  # another process polls it
        poller = self._poller(account)
        if poller is None:
            await self.leases.release(f"{account.platform}:{account_id}")
            return
        poller.fence = token
        self.pollers[account_id] = poller
        log.info("poller lease taken", account_id=account_id, token=token)
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
        except Exception as exc:  # credentials stored before today's rules, say
            problem = f"its credentials make no poller ({type(exc).__name__})"
        if account.id not in self._unusable:  # say it once, not every refresh
            self._unusable.add(account.id)
            log.warning("account cannot be polled", account_id=account.id, problem=problem)
        return None
