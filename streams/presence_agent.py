"""The presence path of the streams worker: its own topic, table, agent and clock.

Apart from the message path (streams/worker.py's `process` agent and its batch pipeline):
`hub.presence` records reach the `presence` agent through Faust's own stream, a batch
at a time; streams/presence.py decides what changed; the table (`presence`, recovered
from its changelog after a restart) keeps each user's devices and each partition's
gateway clock; the changed users get a `presence_update` event and their document in the
`presence` collection. Every `HUB_PRESENCE_HEARTBEAT_S` each worker ticks every partition
(a `tick` record: its clock), so silent gateways expire even when none is left to heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiokafka.errors import KafkaError
from faust.streams import _current_event
from faust.types import EventT, StreamT
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from hubcore.kafka import Topics
from hubcore.mongo import PRESENCE, Document, database
from hubcore.retry import Backoff
from hubcore.settings import Settings
from schemas.base import utc_now
from schemas.events import PresenceUpdate, PresenceUpdateData
from schemas.ids import event_id
from schemas.presence import PresenceRecord
from streams import metrics
from streams.batch.records import Poison, SourceRecord
from streams.presence import (
    GATEWAYS_PREFIX,
    PresenceBatch,
    UserPresence,
    clock_from_value,
    clock_value,
    decode,
    gateways_key,
    iso,
)
from streams.sink.projection import DUPLICATE_KEY
from streams.table.table import key_partition
from streams.take import take_events

if TYPE_CHECKING:
    from streams.worker import StreamsApp

log = structlog.get_logger("streams.presence")

TABLE_NAME = "presence"
_BATCH_WAIT = 0.05  # seconds a batch waits for more records once it has one
_BACKOFF = Backoff(first=0.2, max_delay=5.0)


def install_presence(app: StreamsApp, settings: Settings) -> None:
    """Add the presence table, agent and clock to the streams app."""
    topics = Topics.from_settings(settings)
    partitions = settings.topic_partitions
    lease_ms = int(settings.presence_lease_s * 1000)
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=partitions,
        key_type=bytes,
        help="Each user's live devices and last seen; each partition's gateway clock.",
    )
    source = app.topic(topics.presence, key_serializer="raw", value_serializer="raw")

    def holders(partition: int) -> list[str]:
        """The users of `partition` with a live device (read when a gateway leaves)."""
        return [
            key.decode()
            for key, value in table.items()
            if not key.startswith(GATEWAYS_PREFIX)
            and key_partition(key, partitions) == partition
            and isinstance(value, dict)
            and value.get("d")
        ]

    def online_users() -> int:
        return sum(
            1
            for key, value in table.items()
            if not key.startswith(GATEWAYS_PREFIX) and isinstance(value, dict) and value.get("d")
        )

    metrics.PRESENCE_ONLINE.set_function(online_users)

    @app.agent(source, name="presence")
    async def presence(stream: StreamT[bytes]) -> None:
        """Apply presence records a batch at a time, one partition's records in order."""
        async for events in take_events(stream, settings.streams_batch_size, _BATCH_WAIT):
            started = time.process_time()
            by_partition: dict[int, list[EventT[Any]]] = {}
            for event in events:
                by_partition.setdefault(event.message.partition, []).append(event)
            states: dict[str, UserPresence] = {}
            when: dict[str, int] = {}
            poison: list[Poison] = []
            batches: list[tuple[EventT[Any], PresenceBatch]] = []
            for partition, part in by_partition.items():
                batch = _apply(table, part, partition, lease_ms, holders, poison)
                batches.append((part[-1], batch))
                when.update(batch.changed)
                # A user named by a record is projected even when unchanged: a redo after
                # a crash between the table and the store finds no change but must still
                # write the store (its version check keeps the newer document).
                for user_id in (*batch.changed, *batch.touched):
                    states[user_id] = batch.user(user_id)
            await _until_done("emit", partial(_emit, app, topics, states, when, poison))
            await _until_done("project", partial(_project, app, settings, states))
            for last, batch in batches:
                _advance(table, last, batch)
            metrics.PRESENCE_RECORDS.inc(len(events))
            metrics.PRESENCE_CPU.inc(time.process_time() - started)

    @app.timer(settings.presence_heartbeat_s)  # type: ignore[untyped-decorator]
    async def presence_clock() -> None:
        """Tick every partition: the time by which silent gateways expire."""
        producer = app._hub_producer
        if producer is None:
            return
        record = PresenceRecord(kind="tick", gateway_id=app.conf.id, at=utc_now()).to_json()
        futures = [
            await producer.send(topics.presence, value=record, key=b"tick", partition=p)
            for p in range(partitions)
        ]
        await asyncio.gather(*futures, return_exceptions=True)


def _apply(
    table: Any,
    events: Sequence[EventT[Any]],
    partition: int,
    lease_ms: int,
    holders: Any,
    poison: list[Poison],
) -> PresenceBatch:
    """One partition's records applied to its state from the table (written by `_advance`,
    as of that partition, so a key's changelog record lands on its records' partition)."""
    gateways, applied = clock_from_value(table.get(gateways_key(partition)))
    records: list[tuple[int, PresenceRecord]] = []
    for event in events:
        message = event.message
        if message.offset <= applied:
            continue  # its effect is in the table already (a redo after a restart)
        decoded = decode(
            SourceRecord(message.topic, partition, message.offset, message.key, message.value)
        )
        if isinstance(decoded, Poison):
            poison.append(decoded)
        else:
            records.append((message.offset, decoded))
    batch = PresenceBatch(
        load=lambda user_id: UserPresence.from_value(table.get(user_id.encode())),
        holders=lambda: holders(partition),
        gateways=gateways,
        lease_ms=lease_ms,
        applied=applied,
    )
    batch.apply(records)
    for gateway_id in batch.expired:
        metrics.PRESENCE_GATEWAYS_EXPIRED.inc()
        log.info("presence_gateway_left", gateway_id=gateway_id, partition=partition)
    return batch


@contextlib.contextmanager
def _as_of(event: EventT[Any]) -> Iterator[None]:
    """Table writes as of `event`: Faust files a key's changelog record on the partition of
    the current event, and a batch spans partitions."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _advance(table: Any, event: EventT[Any], batch: PresenceBatch) -> None:
    """The batch's users, then the partition's clock and watermark, into the table once
    the users are in the store: a crash before redoes the whole batch, projection too."""
    batch.applied = max(batch.applied, event.message.offset)
    with _as_of(event):
        for user_id in batch.changed:
            table[user_id.encode()] = batch.users[user_id].to_value()
        table[gateways_key(event.message.partition)] = clock_value(batch.gateways, batch.applied)


async def _until_done(what: str, call: Callable[[], Awaitable[None]]) -> None:
    """Retry a write to Kafka or the store until it succeeds: the batch's records stay
    unacknowledged meanwhile, and nothing of it is lost or skipped."""
    failures = 0
    while True:
        try:
            await call()
            return
        except (KafkaError, PyMongoError, OSError) as exc:
            failures += 1
            wait = _BACKOFF.delay(failures)
            log.warning("presence_write_failed", what=what, error=str(exc), retry_in=wait)
            await asyncio.sleep(wait)


async def _emit(
    app: StreamsApp,
    topics: Topics,
    changed: dict[str, UserPresence],
    when: dict[str, int],
    poison: Iterable[Poison],
) -> None:
    """`presence_update` to each user whose presence changed; dead letters."""
    producer = app._hub_producer
    assert producer is not None
    futures = []
    for user_id, at in when.items():
        state = changed[user_id]
        event = PresenceUpdate(
            id=event_id("presence_update", user_id, str(state.version)),
            user_id=user_id,
            occurred_at=iso(at),
            data=PresenceUpdateData(
                online=state.online,
                devices=len(state.devices),
                last_seen=iso(state.last_seen),
            ),
        )
        futures.append(
            await producer.send(topics.user_events, key=user_id.encode(), value=event.to_json())
        )
    for item in poison:
        metrics.DEAD_LETTERS.labels(item.error.error_type).inc()
        log.warning("dead letter", origin=item.record.origin, reason=item.error.message)
        futures.append(
            await producer.send(
                topics.dead_letter,
                key=item.record.key,
                value=item.dead_letter().to_json(),
                headers=item.headers(),
            )
        )
    await asyncio.gather(*futures)
    metrics.EVENTS.labels("presence_update").inc(len(when))


async def _project(app: StreamsApp, settings: Settings, users: dict[str, UserPresence]) -> None:
    """Each user's document, unless the store already has this version or a newer one."""
    if not users:
        return
    mongo = app._hub_mongo
    assert mongo is not None
    writes = [
        UpdateOne(
            {"_id": user_id, "version": {"$lt": state.version}},
            {"$set": {k: v for k, v in state.to_doc(user_id).items() if k != "_id"}},
            upsert=True,
        )
        for user_id, state in users.items()
    ]
    try:
        await database(mongo, settings)[PRESENCE].bulk_write(cast(list[Any], writes), ordered=False)
    except BulkWriteError as exc:
        errors: list[Document] = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise  # a newer version stored already is the only expected refusal
