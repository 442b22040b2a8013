"""Fixtures of the connectors' integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import Harness, running_app


@pytest.fixture
async def connectors(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[Harness]:
    """A connectors app (no pollers) on this test's own topics and database."""
    async with running_app(settings, mongo_db) as harness:
        yield harness
