"""Fixtures of the connectors' integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import Harness, running_app
from tests.integration.connectors.sending_rig import Rig, sending_rig


@pytest.fixture
async def connectors(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[Harness]:
    """A connectors app (no pollers) on this test's own topics and database."""
    async with running_app(settings, mongo_db) as harness:
        yield harness


@pytest.fixture
async def rig(
    settings_factory: Callable[..., Settings], mongo_client: AsyncMongoClient[Document]
) -> AsyncIterator[Rig]:
    """Platform API stand-ins and a connectors app sending through them."""
    async with sending_rig(settings_factory, mongo_client) as made:
        yield made
