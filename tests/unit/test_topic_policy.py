"""The topic policy: replication from the cluster size, durability, history retention checks."""

from __future__ import annotations

import pytest

from hubcore.kafka import Topics
from hubcore.topic_policy import (
    FOREVER,
    Finding,
    TopicSpec,
    TopicState,
    check,
    durability_config,
    history_config,
    replication_for,
)

BOOT = "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("configured", "brokers", "expected"),
    [(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 5, 3), (1, 3, 1), (2, 1, 2), (0, 0, 1)],
)
def test_replication_is_min_of_three_and_brokers_unless_set(
    configured: int, brokers: int, expected: int
) -> None:
    assert replication_for(configured, brokers) == expected


def test_min_insync_two_only_with_three_replicas() -> None:
    assert durability_config(3) == {"min.insync.replicas": "2"}
    assert durability_config(2) == {}
    assert durability_config(1) == {}


def test_history_topics_keep_forever_or_the_configured_minimum() -> None:
    topics = Topics("hub")
    configs = topics.configs()
    for name in (topics.raw_messages, topics.commands):
        assert configs[name] == {"retention.ms": "-1", "retention.bytes": "-1"}
    assert configs[topics.user_events]["retention.ms"] != "-1"
    assert history_config(86_400_000) == {"retention.ms": "86400000", "retention.bytes": "-1"}
    assert topics.history == {"hub.raw-messages", "hub.commands"}


def _spec(history: bool = True, partitions: int = 6, replication: int = 3) -> TopicSpec:
    return TopicSpec("hub.raw-messages", partitions, replication, {}, history=history)


def _state(partitions: int = 6, replication: int = 3, **config: str) -> TopicState:
    full = {"min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1"}
    full.update({k.replace("_", "."): v for k, v in config.items()})
    return TopicState("hub.raw-messages", partitions, replication, full)


def _check(
    spec: TopicSpec, state: TopicState, brokers: int = 3, minimum: int = FOREVER
) -> list[Finding]:
    return check(spec, state, brokers=brokers, min_retention_ms=minimum, bootstrap=BOOT)


def test_a_topic_as_the_policy_wants_has_no_findings() -> None:
    assert _check(_spec(), _state()) == []
    # One broker, one replica: nothing to warn about.
    assert _check(_spec(replication=1), _state(replication=1), brokers=1) == []


def test_short_retention_of_history_is_an_error_naming_topic_and_fix() -> None:
    [finding] = _check(_spec(), _state(retention_ms="604800000"))
    assert finding.severity == "error" and finding.topic == "hub.raw-messages"
    assert "retention.ms=604800000" in finding.problem
    assert "--entity-name hub.raw-messages --add-config retention.ms=-1" in finding.fix
    assert BOOT in finding.fix


def test_retention_at_least_the_configured_minimum_is_fine() -> None:
    week, day = 604_800_000, 86_400_000
    assert _check(_spec(), _state(retention_ms=str(week)), minimum=day) == []
    [finding] = _check(_spec(), _state(retention_ms=str(day)), minimum=week)
    assert finding.severity == "error" and f"retention.ms={week}" in finding.fix


def test_size_bounded_history_is_an_error() -> None:
    [finding] = _check(_spec(), _state(retention_bytes="1073741824"))
    assert finding.severity == "error" and "retention.bytes=-1" in finding.fix


def test_retention_of_other_topics_is_not_checked() -> None:
    assert _check(_spec(history=False), _state(retention_ms="1000")) == []


def test_fewer_partitions_than_configured_is_a_warning() -> None:
    [finding] = _check(_spec(partitions=12), _state(partitions=6))
    assert finding.severity == "warning"
    assert "6 partitions, 12 configured" in finding.problem
    assert "--partitions 12" in finding.fix and "HUB_TOPIC_PARTITIONS=6" in finding.fix
    assert _check(_spec(partitions=3), _state(partitions=6)) == []  # more is fine


def test_single_replica_on_a_cluster_is_a_warning() -> None:
    [finding] = _check(_spec(), _state(replication=1, min_insync_replicas="1"), brokers=3)
    assert finding.severity == "warning" and "replication factor 1 on a 3-broker" in finding.problem
    assert "kafka-reassign-partitions.sh" in finding.fix


def test_three_replicas_with_min_insync_one_is_a_warning() -> None:
    [finding] = _check(_spec(), _state(min_insync_replicas="1"))
    assert finding.severity == "warning" and "min.insync.replicas=2" in finding.fix
