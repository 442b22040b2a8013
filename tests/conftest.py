"""Session fixtures: real servers, and factories for isolated settings, databases and topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from tests.resources import SessionResources
from tests.servers import Servers, real_servers, wait_writable


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The real Kafka broker and MongoDB-compatible server for this test session."""
    with real_servers() as found:
        wait_writable(found.kafka_bootstrap)
        yield found


@pytest.fixture(scope="session")
def resources(servers: Servers) -> Iterator[SessionResources]:
    """Isolated settings for any scope; their databases and topics go when the session ends."""
    made = SessionResources(servers.kafka_bootstrap, servers.mongo_url)
    yield made
    made.remove_all()


@pytest.fixture
def settings_factory(resources: SessionResources) -> Callable[..., Settings]:
    """Builds Settings pointing at the test servers, with a fresh topic namespace and DB."""
    return resources.settings


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings isolated to this test."""
    return settings_factory()


@pytest.fixture
async def mongo_client(servers: Servers) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = create_client(servers.mongo_url)
    yield client
    await client.close()


@pytest.fixture
async def mongo_db(
    mongo_client: AsyncMongoClient[Document], settings: Settings
) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of this test's own, dropped afterwards."""
    db = mongo_client[settings.mongo_db]
    yield db
    await mongo_client.drop_database(settings.mongo_db)
