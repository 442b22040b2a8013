"""Replay for one webhook endpoint: its user's events from a time (or a cursor) up to the
end of `hub.user-events` at the request, scheduled again as pending deliveries.

The user's events live in the one partition their key hashes to; Kafka's offsets for
times gives the start, the end offset taken first gives the end, so the range is exactly
what was there when asked. The delivery ids are the events' own, so a receiver sees the
same `webhook-id` it saw the first time (docs/webhooks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from pymongo import UpdateOne

from hubcore.kafka import Topics, close_consumer, create_consumer, partition_for
from hubcore.mongo import bulk_write_chunked
from hubcore.webhooks import Webhook, WebhookStore, pending_doc
from schemas.base import utc_now
from schemas.frames import InvalidEvent, decode_event

_RESET = ("state", "attempts", "nextAttemptAt", "deliveredAt")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    scheduled: int  # deliveries made pending again (or new)
    first_cursor: str | None
    last_cursor: str | None
    truncated: bool  # stopped at HUB_WEBHOOK_REPLAY_MAX


async def replay(
    store: WebhookStore,
    webhook: Webhook,
    partitions: list[int],
    *,
    since: datetime | None = None,
    from_offset: int | None = None,
    partition: int | None = None,
) -> ReplayResult:
    """Schedule `webhook`'s events from `since` (or from `from_offset` of `partition`, the
    user's own) to the current end of the topic, of which `partitions` are the partitions."""
    settings = store.settings
    topic = Topics.from_settings(settings).user_events
    key = webhook.user_id.encode()
    timeout_ms = int(settings.kafka_request_timeout * 1000)
    consumer = create_consumer(settings, request_timeout_ms=timeout_ms)
    try:
        await consumer.start()
        if not partitions:
            return ReplayResult(0, None, None, False)
        own = partition_for(key, partitions, partitions)
        if partition is not None and partition != own:
            return ReplayResult(0, None, None, False)  # not one of this user's cursors
        tp = TopicPartition(topic, own)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if since is not None:
            found = (await consumer.offsets_for_times({tp: int(since.timestamp() * 1000)}))[tp]
            start = end if found is None else found.offset
        else:
            start = max(from_offset or 0, (await consumer.beginning_offsets([tp]))[tp])
        consumer.seek(tp, start)
        ops: list[UpdateOne] = []
        first = last = None
        truncated = False
        limit = settings.webhook_replay_max
        wanted = set(webhook.events)
        while start < end and not truncated:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            for record in batch.get(tp, []):
                start = record.offset + 1
                if record.offset >= end:
                    break
                if record.key != key:
                    continue
                try:
                    event = decode_event(record.partition, record.offset, key, record.value or b"")
                except InvalidEvent:
                    continue  # the live delivery dead-letters it; a replay skips it
                if event.type not in wanted:
                    continue
                if len(ops) >= limit:
                    truncated = True
                    break
                doc = pending_doc(topic, webhook, event)
                ops.append(_reset(doc))
                first = first or event.cursor
                last = event.cursor
            # Transaction markers and compacted gaps have offsets but no records.
            start = max(start, await consumer.position(tp))
        if ops:
            await bulk_write_chunked(store.deliveries, ops)
            await store.wake(webhook.id, own)
        return ReplayResult(len(ops), first, last, truncated)
    finally:
        await close_consumer(consumer)


def _reset(doc: dict[str, object]) -> UpdateOne:
    """Insert the delivery, or make an existing one pending again with fresh attempts."""
    doc = {**doc, "nextAttemptAt": utc_now()}
    reset = {k: doc[k] for k in _RESET}
    kept = {k: v for k, v in doc.items() if k not in _RESET and k != "_id"}
    return UpdateOne({"_id": doc["_id"]}, {"$set": reset, "$setOnInsert": kept}, upsert=True)
