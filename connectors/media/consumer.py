"""Consumes `hub.media-fetch` (its own group) in the connectors process, beside the text.

Each job runs on its own (at most `HUB_MEDIA_FETCH_CONCURRENCY` at once, a user at most half
of them, users taken in turn: connectors/media/schedule.py), so a slow file delays only
itself. A partition's offsets are committed up to its first unfinished job, once the jobs
before it are durable (the `attachments` document written, the result command acked): a
process killed mid-fetch reads that job again, and the job's `starts` count
(connectors/media/fetcher.py) lets it resume once, not forever; jobs after it that had
finished are read again and found done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from connectors.errors import OUTAGES, ConnectorError
from connectors.media.fetcher import MediaFetcher
from connectors.media.schedule import FairQueue, OffsetLedger
from connectors.publisher import Publisher
from hubcore.kafka import Session, Topics, consume_forever, create_consumer
from hubcore.settings import Settings
from schemas import MediaFetch

log = structlog.get_logger("connectors.media")

# Files can wait a little: fewer empty fetches when nothing arrives (as the outbound one).
FETCH_MAX_WAIT_MS = 250
# How long a poll waits for new jobs; finished ones are committed at the next poll.
POLL_MS = 250
READ_AHEAD_PER_SLOT = 8


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.connectors-media"


class MediaConsumer:
    """Runs until stopped; survives Kafka and store outages by retrying."""

    def __init__(self, settings: Settings, fetcher: MediaFetcher, publisher: Publisher) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.publisher = publisher
        self.topic = Topics.from_settings(settings).media_fetch
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        fetcher.sleep = self._sleep

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-consumer")

    async def stop(self) -> None:
        """Stop; a fetch under way is abandoned (its job is read again by the next process)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await consume_forever(
            "media consumer",
            self._session,
            outages=OUTAGES,
            ready=self.publisher.wait_ready,
            stopping=self._stopping,
        )

    def _session(self) -> Session:
        consumer = create_consumer(
            self.settings,
            group_id=group_id(self.settings),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        run = _Run(self, consumer)
        consumer.subscribe([self.topic], listener=run)
        return consumer, run.run

    async def one(self, job: MediaFetch, fetched: Callable[[], None] = lambda: None) -> None:
        """Handle one job up to its acked result; an outage is raised (the job is read again).
        `fetched` is called once the file is stored or has failed: what follows (waiting for
        streams to store the message, the result) needs no fetch slot."""
        try:
            try:
                doc = await self.fetcher.fetch(job)
            finally:
                fetched()
            result = await self.fetcher.announce(job, doc)
        except (KafkaError, ConnectorError, PyMongoError, OSError):
            raise
        except Exception:
            # One job must never end the task: its partition would stall for good.
            log.exception("media job crashed", attachment_id=job.attachment.id)
            result = await self.fetcher.give_up(job)
        if result is not None:
            await self.publisher.commands([result])


@dataclass(slots=True)
class _Job:
    tp: TopicPartition
    offset: int
    job: MediaFetch


class _Run(ConsumerRebalanceListener):  # type: ignore[misc]
    """One consumer's life: reads ahead (bounded), runs jobs as slots free up, commits."""

    def __init__(self, owner: MediaConsumer, consumer: AIOKafkaConsumer) -> None:
        self.owner = owner
        self.consumer = consumer
        self.slots = owner.settings.media_fetch_concurrency
        self.queue: FairQueue[_Job] = FairQueue(per_user=max(1, self.slots // 2))
        self.ledger = OffsetLedger()
        self.tasks: set[asyncio.Task[None]] = set()
        self.fetching = 0  # jobs holding a slot (the others wait for their message)
        self.failure: BaseException | None = None
        # Read at most this many jobs ahead of the committed offsets (memory; fairness
        # between users holds within it).
        self.read_ahead = self.slots * READ_AHEAD_PER_SLOT
        self.paused = False

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Another process owns them now: their waiting jobs are its; what runs here ends
        # but is not committed from here (the new owner finds it done or resumes it).
        gone = set(revoked)
        self.queue.drop(lambda job: job.tp in gone)
        self.ledger.drop(gone)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass

    async def run(self) -> None:
        try:
            await self.consume()
        finally:
            await self.abandon()

    async def consume(self) -> None:
        consumer, ledger = self.consumer, self.ledger
        while not self.owner._stopping.is_set():
            if self.failure is not None:
                raise self.failure
            full = ledger.pending >= self.read_ahead
            if full != self.paused:  # still polled while full: the group keeps us
                parts = consumer.assignment()
                (consumer.pause if full else consumer.resume)(*parts)
                self.paused = full
            batch = await consumer.getmany(
                timeout_ms=POLL_MS, max_records=max(1, self.read_ahead - ledger.pending)
            )
            for tp, records in batch.items():
                for record in records:
                    await self._read(tp, record)
            self._start()
            moved = {tp: o for tp, o in ledger.advance().items() if tp in consumer.assignment()}
            if moved:
                await consumer.commit(moved)

    async def _read(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        self.ledger.read(tp, record.offset)
        try:
            job = MediaFetch.from_json(record.value or b"")
        except ValidationError as exc:
            await self.owner.publisher.dead_letter_invalid(record, exc)
            self.ledger.finished(tp, record.offset)
            return
        self.queue.put(job.user_id, _Job(tp, record.offset, job))

    def _start(self) -> None:
        while self.fetching < self.slots and self.failure is None:
            taken = self.queue.take()
            if taken is None:
                return
            user, job = taken
            self.fetching += 1
            task = asyncio.create_task(self._job(user, job), name="media-fetch")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _job(self, user: str, job: _Job) -> None:
        freed = False

        def free() -> None:
            # The file is stored (or failed): its slot goes to the next download at once,
            # while this job waits for streams to store its message (the read-ahead bounds
            # how many wait).
            nonlocal freed
            if not freed:
                freed = True
                self.fetching -= 1
                self.queue.finished(user)
                self._start()

        try:
            await self.owner.one(job.job, free)
        except (KafkaError, ConnectorError, PyMongoError, OSError) as exc:
            self.failure = self.failure or exc  # an outage: the consumer starts over
            return
        finally:
            free()
        self.ledger.finished(job.tp, job.offset)

    async def abandon(self) -> None:
        """Cancel the jobs under way (read again by the next consumer)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
