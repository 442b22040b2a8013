"""Session fixtures: real servers, and factories for isolated settings, databases and topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from tests.servers import Servers, real_servers

TEST_JWT_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The real Kafka broker and MongoDB-compatible server for this test session."""
    with real_servers() as found:
        yield found


def unique(prefix: str) -> str:
    """A name no earlier run used, so reruns on the same servers never collide."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings_factory(servers: Servers) -> Callable[..., Settings]:
    """Builds Settings pointing at the test servers, with a fresh topic namespace and DB."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": servers.kafka_bootstrap,
            "mongo_url": servers.mongo_url,
            "mongo_db": unique("t_"),
            "topic_namespace": unique("t."),
            "topic_partitions": 3,
            "jwt_secret": TEST_JWT_SECRET,
            "_env_file": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


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
