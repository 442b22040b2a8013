"""Topic policy: what each hub topic should be, and what is wrong with one that exists.

Pure functions over plain values; `hubcore.kafka.ensure_topics` feeds them what the
cluster reports and acts on the findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FOREVER = -1
MAX_REPLICATION = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the hub creates it."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str]
    history: bool = False  # replay's source of truth: its retention is checked


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replication: int  # the smallest replica count of any of its partitions
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class Finding:
    """A mismatch between a topic and the policy, with the command that fixes it."""

    severity: Literal["error", "warning"]
    topic: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"topic {self.topic}: {self.problem}; fix: {self.fix}"


def replication_for(configured: int, brokers: int) -> int:
    """`configured` when set (non-zero), else min(3, brokers)."""
    return configured if configured > 0 else max(1, min(MAX_REPLICATION, brokers))


def durability_config(replication: int) -> dict[str, str]:
    """With 3+ replicas an acknowledged write (acks=all) is on at least two brokers."""
    return {"min.insync.replicas": "2"} if replication >= MAX_REPLICATION else {}


def history_config(retention_ms: int) -> dict[str, str]:
    """raw-messages and commands: kept forever unless a (minimum) retention is configured."""
    if retention_ms == FOREVER:
        return {"retention.ms": "-1", "retention.bytes": "-1"}
    return {"retention.ms": str(retention_ms), "retention.bytes": "-1"}


def check(
    spec: TopicSpec, state: TopicState, *, brokers: int, min_retention_ms: int, bootstrap: str
) -> list[Finding]:
    """What is wrong with an existing topic, by severity: errors lose history, warnings
    cost parallelism or durability."""
    found: list[Finding] = []
    tool = f"--bootstrap-server {bootstrap}"
    if state.partitions < spec.partitions:
        found.append(
            Finding(
                "warning",
                spec.name,
                f"{state.partitions} partitions, {spec.partitions} configured",
                f"kafka-topics.sh {tool} --alter --topic {spec.name} "
                f"--partitions {spec.partitions} (moves keys to new partitions: do it idle), "
                f"or set HUB_TOPIC_PARTITIONS={state.partitions}",
            )
        )
    if state.replication < 2 <= brokers:
        found.append(
            Finding(
                "warning",
                spec.name,
                f"replication factor {state.replication} on a {brokers}-broker cluster: "
                "one broker lost loses its partitions",
                f"raise it with kafka-reassign-partitions.sh {tool} (a plan naming "
                f"{min(MAX_REPLICATION, brokers)} replicas per partition)",
            )
        )
    min_isr = int(state.config.get("min.insync.replicas", "1") or 1)
    if state.replication >= MAX_REPLICATION and min_isr < 2:
        found.append(
            Finding(
                "warning",
                spec.name,
                f"min.insync.replicas={min_isr} with {state.replication} replicas: "
                "an acknowledged write may live on one broker only",
                _alter(tool, spec.name, "min.insync.replicas=2"),
            )
        )
    if spec.history:
        found.extend(_retention(spec.name, state.config, min_retention_ms, tool))
    return found


def _retention(name: str, config: dict[str, str], minimum: int, tool: str) -> list[Finding]:
    wanted = "retention.ms=-1" if minimum == FOREVER else f"retention.ms={minimum}"
    found: list[Finding] = []
    ms = int(config.get("retention.ms", "-1") or -1)
    if ms != FOREVER and (minimum == FOREVER or ms < minimum):
        found.append(
            Finding(
                "error",
                name,
                f"retention.ms={ms} deletes history that `hub replay` rebuilds from",
                _alter(tool, name, wanted) + " (or set HUB_HISTORY_RETENTION_MS)",
            )
        )
    if int(config.get("retention.bytes", "-1") or -1) != FOREVER:
        found.append(
            Finding(
                "error",
                name,
                f"retention.bytes={config['retention.bytes']} deletes history by size",
                _alter(tool, name, "retention.bytes=-1"),
            )
        )
    return found


def _alter(tool: str, topic: str, config: str) -> str:
    return (
        f"kafka-configs.sh {tool} --alter --entity-type topics --entity-name {topic} "
        f"--add-config {config}"
    )
