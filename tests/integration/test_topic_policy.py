"""The topic policy against the real broker: new topics per policy, existing ones checked."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from structlog.testing import capture_logs

from hubcore.kafka import TopicPolicyError, Topics, ensure_topics
from hubcore.settings import Settings

pytestmark = pytest.mark.integration


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    return admin


async def test_new_topics_follow_the_policy_on_a_single_broker(settings: Settings) -> None:
    assert await ensure_topics(settings) == 1  # min(3, brokers) with one broker
    topics = Topics.from_settings(settings)
    admin = await _admin(settings)
    try:
        [described] = await admin.describe_topics([topics.commands])
        assert {len(p["replicas"]) for p in described["partitions"]} == {1}
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.commands)]
        )
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        assert (entries["retention.ms"], entries["retention.bytes"]) == ("-1", "-1")
    finally:
        await admin.close()
    with capture_logs() as logs:
        await ensure_topics(settings)  # the hub's own topics pass their own check
    assert [e for e in logs if e["event"] == "topic_policy"] == []


async def test_existing_topics_are_checked_at_start(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    admin = await _admin(settings)
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topics.raw_messages, 3, 1, topic_configs={"retention.ms": str(7 * 86_400_000)}
                ),
                NewTopic(topics.user_events, 1, 1),
            ]
        )
    finally:
        await admin.close()
    with capture_logs() as logs, pytest.raises(TopicPolicyError) as raised:
        await ensure_topics(settings)
    message = str(raised.value)
    assert f"topic {topics.raw_messages}: retention.ms=604800000" in message
    assert f"--entity-name {topics.raw_messages} --add-config retention.ms=-1" in message
    assert topics.commands not in message  # created by the hub just now: as the policy wants
    [warning] = [e for e in logs if e["event"] == "topic_policy"]
    assert warning["topic"] == topics.user_events and warning["log_level"] == "warning"
    assert warning["problem"] == "1 partitions, 3 configured"

    # Allowed once the operator configures a minimum the topic keeps.
    relaxed = settings.model_copy(update={"history_retention_ms": 86_400_000})
    await ensure_topics(relaxed)
