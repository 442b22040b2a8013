"""`hub analytics export`: the history topics into Parquet, resumable and exactly once.

Positions come from the files (see `analytics.layout`), never from the consumer group's
committed offsets: the group (`HUB_ANALYTICS_GROUP`, not the live processes' group) only
mirrors them so that lag tools show how far the export is behind. Each run reads up to
the end offsets captured at its start, so it always finishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from analytics.columns import KINDS, to_table
from analytics.layout import Span, exclusive, next_offsets, remove_leftovers, write_atomically
from hubcore.errors import HubError, ServiceUnavailable
from hubcore.settings import Settings

log = structlog.get_logger("analytics.export")

# Records held in memory across partitions before they are written out early.
_MAX_BUFFERED = 200_000
# A partition that stops advancing for this long while records are still due is a fault.
_STALL_SECONDS = 60.0


@dataclass(slots=True)
class ExportSummary:
    """What one run wrote."""

    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    files: int = 0
    skipped_by_retention: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        counts = ", ".join(f"{kind} {n}" for kind, n in self.records.items())
        extra = (
            f"; {self.skipped_by_retention} records had expired before any export"
            if self.skipped_by_retention
            else ""
        )
        return (
            f"exported {sum(self.records.values())} records ({counts}) into {self.files} "
            f"files in {self.seconds:.2f} s{extra}"
        )


def _day(timestamp_ms: int) -> date:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).date()


@dataclass(slots=True)
class _Pending:
    """Records of one partition not yet in a file: one day's, in offset order."""

    kind: str
    records: list[Any] = field(default_factory=list)
    day: date | None = None


class Exporter:
    """One run of the export into `root` (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        root: Path,
        *,
        max_records_per_file: int = 100_000,
    ) -> None:
        self.settings = settings
        self.root = root
        self.max_records = max_records_per_file
        ns = settings.topic_namespace
        self.kinds = {f"{ns}.{kind}": kind for kind in KINDS}
        self.summary = ExportSummary()

    async def run(self) -> ExportSummary:
        started = time.monotonic()
        with exclusive(self.root, self.settings.topic_namespace):
            removed = remove_leftovers(self.root)
            if removed:
                log.info("analytics.leftovers_removed", files=removed)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=self.settings.analytics_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=max(int(self.settings.kafka_request_timeout * 1000), 10_000),
            )
            try:
                await consumer.start()
                await self._export(consumer)
            except KafkaError as exc:
                raise ServiceUnavailable(
                    f"Kafka at {self.settings.kafka_bootstrap}: {exc}",
                    fix="start it (`hub services up`) or set HUB_KAFKA_BOOTSTRAP; "
                    "rerun to continue where this run stopped",
                ) from exc
            finally:
                await consumer.stop()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _export(self, consumer: AIOKafkaConsumer) -> None:
        counts = await self._partition_counts()
        tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        if not tps:
            return
        consumer.assign(tps)
        due = await self._plan(consumer, tps)
        pending = {tp: _Pending(self.kinds[tp.topic]) for tp in due}
        consumer.pause(*[tp for tp in tps if tp not in due])
        last_progress = time.monotonic()
        while due:
            batches = await consumer.getmany(*due, timeout_ms=1000, max_records=10_000)
            if batches:
                last_progress = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= due[tp]:
                        break  # produced after this run started: the next run's
                    await self._add(consumer, tp, pending[tp], record)
            if sum(len(p.records) for p in pending.values()) > _MAX_BUFFERED:
                for tp, part in pending.items():  # bound memory: smaller files instead
                    await self._flush(consumer, tp, part)
            for tp in list(due):
                if await consumer.position(tp) >= due[tp]:
                    await self._flush(consumer, tp, pending[tp])
                    consumer.pause(tp)
                    del due[tp]
            if due and time.monotonic() - last_progress > _STALL_SECONDS:
                raise ServiceUnavailable(
                    f"no records from {sorted(str(tp) for tp in due)} for {_STALL_SECONDS:.0f} s",
                    fix="check the broker; rerun to continue",
                )

    async def _plan(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Seek each partition to where its files end; partition -> end offset to reach."""
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        begins: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        done = next_offsets(self.root)
        due: dict[TopicPartition, int] = {}
        for tp in tps:
            start = done.get((self.kinds[tp.topic], tp.partition), 0)
            if start > ends[tp]:
                raise HubError(
                    f"{self.root} holds offsets up to {start - 1} of {tp.topic} partition "
                    f"{tp.partition}, which ends at {ends[tp]}: the topic was recreated",
                    fix="export into a new --out directory",
                )
            if start < begins[tp]:
                # Expired by retention before an export saw them: say so, never hide it.
                missing = begins[tp] - start
                self.summary.skipped_by_retention += missing
                log.warning(
                    "analytics.expired", topic=tp.topic, partition=tp.partition, missing=missing
                )
                start = begins[tp]
            if start < ends[tp]:
                consumer.seek(tp, start)
                due[tp] = ends[tp]
        return due

    async def _partition_counts(self) -> dict[str, int]:
        """Topic -> partitions, for those of the history topics that exist."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap,
            request_timeout_ms=max(int(self.settings.kafka_request_timeout * 1000), 10_000),
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [t for t in self.kinds if t in existing]
            described = await admin.describe_topics(wanted) if wanted else []
        finally:
            await admin.close()
        return {t["topic"]: len(t["partitions"]) for t in described}

    async def _add(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, pending: _Pending, record: Any
    ) -> None:
        day = _day(record.timestamp)
        if pending.records and (day != pending.day or len(pending.records) >= self.max_records):
            await self._flush(consumer, tp, pending)
        pending.day = day
        pending.records.append(record)

    async def _flush(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, pending: _Pending
    ) -> None:
        if not pending.records or pending.day is None:
            return
        records = pending.records
        span = Span(pending.kind, pending.day, tp.partition, records[0].offset, records[-1].offset)
        write_atomically(to_table(pending.kind, records), span, self.root)
        self.summary.files += 1
        self.summary.records[pending.kind] += len(records)
        pending.records = []
        try:
            # Only a mirror for lag monitoring; the files are the real progress.
            await consumer.commit({tp: OffsetAndMetadata(span.last + 1, "")})
        except KafkaError as exc:
            log.warning("analytics.commit_failed", topic=tp.topic, error=str(exc))
