"""Generated history for the analytics tests, and what the exported files hold."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from hubcore.kafka import Topics
from hubcore.settings import Settings
from schemas import DeadLetter, DeadLetterSource, MarkRead, RawMessage
from tests.streams_helpers import T0, consume_all, produce, raw_message

PLATFORMS = ("telegram", "whatsapp", "slack", "email", "generic")


@dataclass
class History:
    """What was produced: (kind, partition, offset) -> value, filled from the topics."""

    raws: list[RawMessage] = field(default_factory=list)
    commands: list[MarkRead] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def generate(seed: int, messages: int, *, start: int = 0) -> History:
    """Messages of 3 users over 8 hours on every platform, some delivered twice, about
    half marked read minutes to hours later, and dead letters of three reasons."""
    rng = random.Random(seed)
    history = History()
    for n in range(start, start + messages):
        user = f"u{rng.randrange(3)}"
        platform = rng.choice(PLATFORMS)
        msg = raw_message(
            user,
            n,
            chat=f"chat-{rng.randrange(4)}",
            platform=platform,
            account=f"acc{rng.randrange(2)}",
        )
        received = T0 + timedelta(seconds=rng.randrange(8 * 3600))
        msg = msg.model_copy(update={"received_at": received, "sent_at": received})
        history.raws.append(msg)
        if rng.random() < 0.1:
            history.raws.append(msg)  # a platform's retry: the same message again
        if rng.random() < 0.5:
            issued = received + timedelta(seconds=rng.randrange(1, 7200))
            history.commands.append(
                MarkRead(
                    id=f"c{n}",
                    user_id=user,
                    conversation_id=msg.conversation_id,
                    message_ids=[msg.id],
                    issued_at=issued,
                )
            )
    for n in range(messages // 10):
        reason = ("not JSON", "schema mismatch", "unknown account")[n % 3]
        history.dead.append(
            DeadLetter(
                reason=reason,
                error_type="InvalidInput",
                source=DeadLetterSource(topic="x.raw-messages", partition=0, offset=n),
                payload="{",
                failed_at=T0 + timedelta(minutes=n),
            )
        )
    return history


async def publish(settings: Settings, history: History, *, poison: int = 0) -> None:
    """Produce the history to the settings' topics (and `poison` non-JSON raw records)."""
    topics = Topics.from_settings(settings)
    await produce(
        settings,
        topics.raw_messages,
        [(r.user_id.encode(), r.to_json()) for r in history.raws]
        + [(b"u0", b"\xff not json") for _ in range(poison)],
    )
    await produce(
        settings, topics.commands, [(c.user_id.encode(), c.to_json()) for c in history.commands]
    )
    await produce(settings, topics.dead_letter, [(None, d.to_json()) for d in history.dead])


async def topic_records(settings: Settings, expected: int) -> Counter[tuple[str, int, int]]:
    """(kind, partition, offset) of every record on the four history topics."""
    found: Counter[tuple[str, int, int]] = Counter()
    for kind in ("raw-messages", "commands", "user-events", "dead-letter"):
        topic = f"{settings.topic_namespace}.{kind}"
        for record in await consume_all(settings, topic, want=expected, timeout=3.0):
            found[(kind, record.partition, record.offset)] += 1
    return found


def file_records(root: Path) -> Counter[tuple[str, int, int]]:
    """(kind, partition, offset) of every row of every exported file, counted."""
    found: Counter[tuple[str, int, int]] = Counter()
    for path in root.glob("topic=*/day=*/*.parquet"):
        kind = path.parent.parent.name.removeprefix("topic=")
        table = pq.read_table(path, columns=["kafka_partition", "kafka_offset"])
        rows: dict[str, list[Any]] = table.to_pydict()
        for partition, offset in zip(rows["kafka_partition"], rows["kafka_offset"], strict=True):
            found[(kind, partition, offset)] += 1
    return found


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (DuckDB's `quantile_cont`)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
