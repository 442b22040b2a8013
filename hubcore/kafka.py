"""Kafka access shared by the hub's processes: topic names and configs, producer, admin."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from hubcore.errors import ServiceUnavailable
from hubcore.settings import Settings

# The history topics are the source of truth that `hub replay` rebuilds from: keep forever.
_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
_WEEK_MS = str(7 * 24 * 3600 * 1000)
_MONTH_MS = str(30 * 24 * 3600 * 1000)


@dataclass(frozen=True, slots=True)
class Topics:
    """The contract's four topics, under a namespace (`hub` in production, unique in tests)."""

    namespace: str = "hub"

    @property
    def raw_messages(self) -> str:
        return f"{self.namespace}.raw-messages"

    @property
    def commands(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def user_events(self) -> str:
        return f"{self.namespace}.user-events"

    @property
    def dead_letter(self) -> str:
        return f"{self.namespace}.dead-letter"

    def configs(self) -> dict[str, dict[str, str]]:
        """Topic name -> topic-level config the hub creates it with."""
        return {
            self.raw_messages: dict(_FOREVER),
            self.commands: dict(_FOREVER),
            self.user_events: {"retention.ms": _WEEK_MS},
            self.dead_letter: {"retention.ms": _MONTH_MS},
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(settings.topic_namespace)


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2, as the Java client) with each key's hash
    remembered: aiokafka's pure-Python murmur2 costs more than the rest of a send, and the
    keys (user ids) repeat."""
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


def producer_config(settings: Settings) -> dict[str, Any]:
    """Durable, batched producer settings: a send resolves only when all ISRs have it."""
    timeout_ms = int(settings.kafka_request_timeout * 1000)
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": "lz4",
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": timeout_ms,
        "retry_backoff_ms": 100,
        "partitioner": partition_for,
    }


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer configured per `producer_config`; the caller starts and stops it."""
    return AIOKafkaProducer(**{**producer_config(settings), **overrides})


async def ensure_topics(settings: Settings, extra: dict[str, dict[str, str]] | None = None) -> None:
    """Create the hub's topics with the configured partitions and replication if missing."""
    topics = Topics.from_settings(settings)
    wanted = {**topics.configs(), **(extra or {})}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=config,
            )
            for name, config in wanted.items()
            if name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is fine
    except KafkaError as exc:
        raise ServiceUnavailable(
            f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}",
            fix="start it (`hub services up`) or set HUB_KAFKA_BOOTSTRAP",
        ) from exc
    finally:
        await admin.close()


async def kafka_ping(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a broker answers a metadata request within `timeout` seconds."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        # A cheap TCP probe first: the client logs an error per refused connection.
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), timeout
        )
        writer.close()
    except (OSError, TimeoutError, ValueError):
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):  # closing a never-started client may raise
            await admin.close()
