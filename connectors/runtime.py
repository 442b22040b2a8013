"""The per-process objects the routes share, held on `app.state.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.requests import Request

from connectors.account_cache import AccountCache
from connectors.publisher import Publisher
from hubcore.mongo import Document
from hubcore.settings import Settings

if TYPE_CHECKING:
    from connectors.pollers.supervisor import PollerSupervisor


@dataclass(slots=True)
class Runtime:
    """Settings, store, producer and pollers of one connectors process."""

    settings: Settings
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    publisher: Publisher
    accounts: AccountCache
    pollers: PollerSupervisor | None = None


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: this process's runtime."""
    rt: Runtime = request.app.state.runtime
    return rt
