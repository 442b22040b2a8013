"""Kafka access shared by the hub's processes: topic names and configs, producer, admin."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from hubcore.errors import HubError, ServiceUnavailable
from hubcore.retry import Backoff
from hubcore.settings import Settings
from hubcore.topic_policy import (
    FOREVER,
    TopicSpec,
    TopicState,
    check,
    durability_config,
    history_config,
    replication_for,
)

log = structlog.get_logger("hubcore.kafka")

_WEEK_MS = str(7 * 24 * 3600 * 1000)
_MONTH_MS = str(30 * 24 * 3600 * 1000)


@dataclass(frozen=True, slots=True)
class Topics:
    """The contract's topics, under a namespace (`hub` in production, unique in tests)."""

    namespace: str = "hub"

    @property
    def raw_messages(self) -> str:
        return f"{self.namespace}.raw-messages"

    @property
    def commands(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def outbound(self) -> str:
        return f"{self.namespace}.outbound"

    @property
    def user_events(self) -> str:
        return f"{self.namespace}.user-events"

    @property
    def dead_letter(self) -> str:
        return f"{self.namespace}.dead-letter"

    @property
    def presence(self) -> str:
        return f"{self.namespace}.presence"

    @property
    def media_fetch(self) -> str:
        """Attachments for the connectors to fetch (docs/media.md); never replayed."""
        return f"{self.namespace}.media-fetch"

    def configs(self, history_retention_ms: int = FOREVER) -> dict[str, dict[str, str]]:
        """Topic name -> topic-level config the hub creates it with (before replication)."""
        # The history topics are the source of truth that `hub replay` rebuilds from.
        return {
            self.raw_messages: history_config(history_retention_ms),
            self.commands: history_config(history_retention_ms),
            self.outbound: history_config(history_retention_ms),
            self.user_events: {"retention.ms": _WEEK_MS},
            self.dead_letter: {"retention.ms": _MONTH_MS},
            # Connection changes: the presence table (its changelog) keeps their effect.
            self.presence: {"retention.ms": _WEEK_MS},
            self.media_fetch: {"retention.ms": _WEEK_MS},
        }

    @property
    def history(self) -> frozenset[str]:
        return frozenset((self.raw_messages, self.commands))

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


# How long the broker holds a fetch that finds no new records. aiokafka leaves out of its
# next fetch every partition whose records are still buffered, so when only idle partitions
# are left in it, new records of the busy ones are not fetched until this wait is over:
# with Faust's 1.5 s (aiokafka's default 500 ms) a worker under load fell ~1.8 s behind in
# lumps. Short waits cost one small empty request per wait when idle (~0.5 ms of CPU
# each): the gateway's pump, which consumes every fetch at once, and the outbound
# consumer, whose replies can wait, choose longer ones.
FETCH_MAX_WAIT_MS = 20

# `fetch_min_bytes` of a consumer that would rather take records in batches of its whole
# fetch wait than one fetch (and its commit and store reads) per record or two: the broker
# answers when it has this much or the wait is over.
BATCH_MIN_BYTES = 256 * 1024


def create_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer of the hub's broker that commits only when told and waits at most
    `FETCH_MAX_WAIT_MS` per fetch; the caller starts it and drops it (`close_consumer`)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "enable_auto_commit": False,
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
    }
    return AIOKafkaConsumer(*topics, **{**config, **overrides})


async def close_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer that is being dropped; what it fails with is of no interest.

    aiokafka's fetcher re-raises from `stop()` the CancelledError of a fetch it cancelled
    while that fetch waited out its retry backoff (broker away): only a cancellation of the
    calling task itself goes on.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        log.debug("consumer stop failed", error=repr(exc))


# Reconnecting while Kafka or the store is away: 0.5 s doubling to 10 s, forever.
RECONNECT = Backoff(first=0.5, max_delay=10.0)

# What a consumer session returns: the consumer the loop starts and drops, and what to run
# with it once started (it returns only when the owner stops).
Session = tuple[AIOKafkaConsumer, Callable[[], Awaitable[None]]]


async def consume_forever(
    what: str,
    open_session: Callable[[], Session],
    *,
    outages: tuple[type[Exception], ...] = (KafkaError, OSError),
    ready: Callable[[], Awaitable[None]] | None = None,
    stopping: asyncio.Event | None = None,
    backoff: Backoff = RECONNECT,
) -> None:
    """The reconnect loop of a long-running consumer: open a session, wait for `ready`
    (e.g. the producer results go to), start the consumer and run the session; on an
    outage (an error of `outages` from any of them) drop the consumer, wait out `backoff`
    and open a new one, which resumes from the committed offsets.

    Runs until `stopping` is set (or the task is cancelled); the backoff wait ends early
    when it is. An error of one record is the session's to contain: anything not in
    `outages` ends the loop.
    """
    failures = 0
    while stopping is None or not stopping.is_set():
        consumer, run = open_session()
        delay = 0.0
        try:
            if ready is not None:
                await ready()
            await consumer.start()
            failures = 0
            await run()
        except outages as exc:
            failures += 1
            delay = backoff.delay(failures)
            log.warning(f"{what} failed", error=str(exc)[:200], retry_in=round(delay, 3))
        finally:
            await close_consumer(consumer)
        if stopping is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)


def producer_config(settings: Settings) -> dict[str, Any]:
    """Durable, batched producer settings: a send resolves only when all ISRs have it.

    No linger: aiokafka keeps one produce request per broker in flight, and what is sent
    meanwhile goes out together in the next one, so records batch under load anyway;
    lingering only delays a lone record (README, Performance: P3).
    """
    timeout_ms = int(settings.kafka_request_timeout * 1000)
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "compression_type": "lz4",
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": timeout_ms,
        "retry_backoff_ms": 100,
        "partitioner": partition_for,
    }


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer configured per `producer_config`; the caller starts and stops it."""
    return AIOKafkaProducer(**{**producer_config(settings), **overrides})


class TopicPolicyError(HubError):
    """An existing topic would lose history; the message names the topic and the fix."""

    code = "topic_policy"


async def ensure_topics(settings: Settings, extra: dict[str, dict[str, str]] | None = None) -> int:
    """Create the hub's topics per the topic policy (hubcore/topic_policy.py) if missing and
    check the existing ones: warnings are logged, errors raise `TopicPolicyError`.

    Returns the replication factor topics are created with (for Faust's own topics).
    """
    topics = Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )
    try:
        await admin.start()
        brokers = len((await admin.describe_cluster())["brokers"])
        replication = replication_for(settings.topic_replication, brokers)
        wanted = [
            TopicSpec(
                name,
                settings.topic_partitions,
                replication,
                {**durability_config(replication), **config},
                history=name in topics.history,
            )
            for name, config in {
                **topics.configs(settings.history_retention_ms),
                **(extra or {}),
            }.items()
        ]
        existing = set(await admin.list_topics())
        new = [
            NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config)
            for s in wanted
            if s.name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is fine
        old = [s for s in wanted if s.name in existing]
        states = await _describe(admin, [s.name for s in old]) if old else {}
    except KafkaError as exc:
        raise ServiceUnavailable(
            f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}",
            fix="start it (`hub services up`) or set HUB_KAFKA_BOOTSTRAP",
        ) from exc
    finally:
        await admin.close()
    findings = [
        finding
        for spec in old
        if spec.name in states
        for finding in check(
            spec,
            states[spec.name],
            brokers=brokers,
            min_retention_ms=settings.history_retention_ms,
            bootstrap=settings.kafka_bootstrap,
        )
    ]
    for finding in findings:
        if finding.severity == "warning":
            log.warning(
                "topic_policy", topic=finding.topic, problem=finding.problem, fix=finding.fix
            )
    errors = [str(f) for f in findings if f.severity == "error"]
    if errors:
        raise TopicPolicyError("; ".join(errors), fix="alter the topics as named, then restart")
    return replication


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    """Partitions, smallest replica count and explicit config of each named topic."""
    described = await admin.describe_topics(names)
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    states: dict[str, TopicState] = {}
    for topic in described:
        partitions = topic.get("partitions") or []
        if topic.get("error_code") or not partitions:
            continue
        states[topic["topic"]] = TopicState(
            topic["topic"],
            len(partitions),
            min(len(p["replicas"]) for p in partitions),
            configs.get(topic["topic"], {}),
        )
    return states


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
