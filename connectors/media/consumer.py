"""Consumes `hub.media-fetch` (its own group) in the connectors process, beside the text.

A batch's jobs run concurrently (at most `HUB_MEDIA_FETCH_CONCURRENCY`); its offsets are
committed once every job's result is durable (the `attachments` document written, the
result command acked): a process killed mid-fetch reads the job again, and the job's
`starts` count (connectors/media/fetcher.py) lets it resume once, not forever.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from connectors.errors import ConnectorError
from connectors.media.fetcher import MediaFetcher
from connectors.publisher import Publisher
from hubcore.kafka import Topics, close_consumer, create_consumer
from hubcore.settings import Settings
from schemas import MediaFetch

log = structlog.get_logger("connectors.media")

_MAX_BACKOFF = 10.0
# Files can wait a little: fewer empty fetches when nothing arrives (as the outbound one).
FETCH_MAX_WAIT_MS = 250


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
        self._slots = asyncio.Semaphore(settings.media_fetch_concurrency)
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
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = create_consumer(
                self.settings,
                self.topic,
                group_id=group_id(self.settings),
                auto_offset_reset="earliest",
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
            try:
                await self.publisher.wait_ready()
                await consumer.start()
                backoff = 0.5
                while not self._stopping.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=1000, max_records=self.settings.media_fetch_concurrency * 4
                    )
                    records = [r for records in batch.values() for r in records]
                    if records:
                        await asyncio.gather(*(self._one(r) for r in records))
                        await consumer.commit()
            except (KafkaError, ConnectorError, PyMongoError, OSError) as exc:
                log.warning("media consumer failed", error=str(exc), retry_in=backoff)
            finally:
                await close_consumer(consumer)
            await self._sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _one(self, record: ConsumerRecord) -> None:
        value = record.value or b""
        try:
            job = MediaFetch.from_json(value)
        except ValidationError as exc:
            await self.publisher.dead_letter_invalid(record, exc)
            return
        async with self._slots:
            try:
                result = await self.fetcher.handle(job)
            except (KafkaError, ConnectorError, PyMongoError, OSError):
                raise  # an outage: the batch is read again once it is over
            except Exception:
                # One job must never end the task: its partition would stall for good.
                log.exception("media job crashed", attachment_id=job.attachment.id)
                result = await self.fetcher.give_up(job)
            if result is not None:
                await self.publisher.commands([result])
