"""Finds or starts the real Kafka broker and MongoDB-compatible server the tests talk to."""

from __future__ import annotations

import os
import shutil
import subprocess
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
