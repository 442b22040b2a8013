"""Session fixtures: real servers, and factories for isolated settings, databases and topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from tests.resources import SessionResources
from tests.servers import Servers, real_servers, wait_writable

TESTS = Path(__file__).resolve().parent


def misplaced(items: Iterable[pytest.Item]) -> list[str]:
    """Tests whose `integration` marker disagrees with their folder: every test under
    tests/integration talks to the real servers and says so, none under tests/unit does."""
    wrong = []
    for item in items:
        marked = item.get_closest_marker("integration") is not None
        if TESTS / "integration" in item.path.parents and not marked:
            wrong.append(f"{item.nodeid}: under tests/integration without the marker")
        elif TESTS / "unit" in item.path.parents and marked:
            wrong.append(f"{item.nodeid}: under tests/unit with the integration marker")
    return wrong


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuses a run with a misplaced test (`misplaced`). Orders files with a slow test
    first, those allowed the longest first of all: with the tests in several processes
    (`make test`) each file stays in one, and a long file handed out last would run alone
    at the end. Order within a file is kept."""
    rank: dict[Path, tuple[bool, float]] = {}
    for item in items:
        timeout = item.get_closest_marker("timeout")
        limit = float(timeout.args[0]) if timeout and timeout.args else 0.0
        slow = item.get_closest_marker("slow") is not None
        was_slow, was_limit = rank.get(item.path, (False, 0.0))
        rank[item.path] = (slow or was_slow, max(limit, was_limit))
    items.sort(key=lambda item: (not rank[item.path][0], -rank[item.path][1]))
    if wrong := misplaced(items):
        raise pytest.UsageError("integration marker wrong:\n" + "\n".join(wrong))


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
