"""Kafka-side facts the streams rely on: co-partitioned topics, end offsets, group offsets."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hubcore.errors import ServiceUnavailable
from hubcore.kafka import Topics, create_consumer
from hubcore.settings import Settings
from streams.errors import StreamsError


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )


async def partition_counts(settings: Settings, names: Iterable[str]) -> dict[str, int]:
    """Topic -> number of partitions, for the topics that exist."""
    admin = _admin(settings)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        described = await admin.describe_topics(wanted) if wanted else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def check_copartitioned(settings: Settings, extra: Iterable[str] = ()) -> None:
    """Refuse to start unless raw-messages, commands and the changelog share one partition
    count equal to HUB_TOPIC_PARTITIONS: a user's records and table state must meet on
    the same partition number, owned by one worker."""
    topics = Topics.from_settings(settings)
    counts = await partition_counts(settings, [topics.raw_messages, topics.commands, *extra])
    wrong = {name: n for name, n in counts.items() if n != settings.topic_partitions}
    if wrong:
        shown = ", ".join(f"{name} has {n}" for name, n in sorted(wrong.items()))
        raise StreamsError(
            f"topics are not co-partitioned with HUB_TOPIC_PARTITIONS="
            f"{settings.topic_partitions}: {shown}",
            fix="set HUB_TOPIC_PARTITIONS to the existing topics' partition count",
        )


async def group_members(settings: Settings, group_id: str) -> int:
    """How many consumers are in `group_id` right now."""
    admin = _admin(settings)
    try:
        await admin.start()
        described = await admin.describe_consumer_groups([group_id])
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    members = 0
    for group in described:
        for entry in group.groups:
            members += len(entry[5])
    return members


async def commit_group_offsets(
    settings: Settings, group_id: str, offsets: dict[TopicPartition, int]
) -> None:
    """Set `group_id`'s committed positions (the next offset to read) for `offsets`."""
    consumer = create_consumer(settings, group_id=group_id)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    finally:
        await consumer.stop()
