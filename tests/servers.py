"""Finds or starts the real Kafka broker and MongoDB-compatible server the tests talk to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    mongo_url: str
    origin: str  # "env", "testcontainers" or "hub services"


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextmanager
def _testcontainers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        MongoDbContainer("mongo:7") as mongo,
    ):
        yield Servers(kafka.get_bootstrap_server(), mongo.get_connection_url(), "testcontainers")


@contextmanager
def real_servers() -> Iterator[Servers]:
    """HUB_KAFKA_BOOTSTRAP/HUB_MONGO_URL if set; else testcontainers if a Docker engine
    answers; else the hub's own local servers (`hub services up`)."""
    bootstrap = os.environ.get("HUB_KAFKA_BOOTSTRAP")
    mongo_url = os.environ.get("HUB_MONGO_URL")
    if bootstrap and mongo_url:
        yield Servers(bootstrap, mongo_url, "env")
        return
    if os.environ.get("HUB_TEST_DOCKER", "1") != "0" and _docker_engine_answers():
        with _testcontainers() as servers:
            yield servers
        return
    from hub.provision.services import LocalServices
    from hubcore.settings import Settings

    local = LocalServices(Settings(_env_file=None))
    local.up(echo=lambda line: print(f"[hub services] {line}"))
    yield Servers(local.settings.kafka_bootstrap, local.settings.mongo_url, "hub services")


async def _produce_once(bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"warm-up"), 10)
    finally:
        await producer.stop()


async def _delete_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def wait_writable(bootstrap: str, timeout: float = 120.0) -> None:
    """Return once the broker acknowledges an idempotent `acks=all` produce to a new topic.

    A broker that has just started answers metadata requests seconds before it takes
    writes (it still loads its partitions and hands out producer ids); the first tests
    would otherwise meet its warm-up instead of the behaviour they check.
    """
    topic = f"t.warmup-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(_produce_once(bootstrap, topic))
            break
        except Exception as exc:  # any client error: the broker is not ready yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} takes no writes: {exc!r}") from exc
            time.sleep(1)
    with contextlib.suppress(Exception):
        asyncio.run(_delete_topic(bootstrap, topic))
