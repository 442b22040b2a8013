"""Fixtures of the integration tests: a running gateway (`gw`, serving the `settings`
fixture, which a module overrides for other settings) and the streams tests' worker, one
running `hub streams` per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.mongo import Document, create_client
from hubcore.settings import Settings
from tests.integration.gateway_kit import RunningGateway, running_gateway
from tests.resources import SessionResources
from tests.streams_helpers import BrokerSink, Worker, wait_ready, worker_env


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A gateway in this process, its Kafka consumer positioned."""
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture(scope="module")
def module_settings(resources: SessionResources) -> Settings:
    """One namespace and database for the module's worker; each test has its own users."""
    return resources.settings()


@pytest.fixture(scope="module")
def worker(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A `hub streams` worker of the module's namespace."""
    tmp: Path = tmp_path_factory.mktemp("streams")
    proc = Worker(worker_env(module_settings, tmp), tmp / "worker.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def db(module_settings: Settings, worker: Worker) -> AsyncIterator[AsyncDatabase[Document]]:
    """The module's database, once its worker is ready; dropped at the end."""
    await ensure_topics(module_settings)
    await wait_ready(worker)
    client = create_client(module_settings.mongo_url)
    yield client[module_settings.mongo_db]
    await client.drop_database(module_settings.mongo_db)
    await client.close()


@pytest.fixture(scope="module")
async def sinks(
    request: pytest.FixtureRequest, resources: SessionResources
) -> AsyncIterator[Callable[[], BrokerSink]]:
    """Makes sinks producing to the real broker, on the topics of the module's `TOPICS`
    (a namespace of its own, removed with the session's), through one producer."""
    topics: Topics = request.module.TOPICS
    settings = resources.settings(topic_namespace=topics.namespace)
    await ensure_topics(settings)
    producer = create_producer(settings)
    await producer.start()
    yield lambda: BrokerSink(producer, settings.kafka_bootstrap)
    await producer.stop()
