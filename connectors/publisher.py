"""The one shared Kafka producer: started lazily, retried forever, every send bounded in time.

Webhook handlers and pollers hand it normalized records; it drops what this process
recently had acknowledged (the cheap edge dedupe; the deterministic ids are what really
dedupe downstream) and returns only when Kafka acknowledged every record (acks=all), or
raises `KafkaUnavailable` within `HUB_KAFKA_REQUEST_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from pydantic import ValidationError

from connectors.errors import BodyTooLarge, KafkaUnavailable
from connectors.media.jobs import fetch_jobs
from connectors.metrics import (
    DEAD_LETTERS,
    DUPLICATES_DROPPED,
    KAFKA_READY,
    MESSAGES_PRODUCED,
    PRODUCE_SECONDS,
)
from hubcore.errors import HubError
from hubcore.kafka import TopicPolicyError, Topics, create_producer, ensure_topics
from hubcore.settings import Settings
from schemas import DeadLetter, DeadLetterSource, RawMessage
from schemas.base import utc_now
from schemas.commands import AnyCommand

log = structlog.get_logger("connectors.publisher")

_MAX_BACKOFF = 10.0


# The labelled child, looked up once (as connectors/webhooks.py's): `labels()` takes a
# lock and builds a key on every call. Platforms and sources are closed sets.
@functools.cache
def _produced(platform: str, source: str) -> Counter:
    return MESSAGES_PRODUCED.labels(platform, source)


class RecentKeys:
    """Remembers at most `size` keys; the oldest are forgotten first. Not thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Iterable[Hashable]) -> None:
        """Remember `keys`, forgetting the least recently seen ones beyond `size`."""
        if self.size <= 0:
            return
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Published:
    """What a `publish` did: records acknowledged now, and duplicates not sent again."""

    produced: int
    duplicates: int


class Publisher:
    """Owns the producer; safe to share between concurrent requests and pollers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self._producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._recent = RecentKeys(settings.connectors_dedupe_size)

    @property
    def ready(self) -> bool:
        """True once the producer is connected (it reconnects by itself after that)."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Return once the producer is connected."""
        await self._ready.wait()

    async def start(self) -> None:
        """Begin connecting in the background; never blocks or fails startup."""
        if self._connector is None:
            self._connector = asyncio.create_task(self._connect(), name="kafka-connect")

    async def stop(self) -> None:
        """Stop connecting, flush what is in flight and close the producer."""
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await asyncio.wait_for(self._producer.stop(), self.settings.kafka_request_timeout)
        self._ready.clear()
        KAFKA_READY.set(0)

    async def _connect(self) -> None:
        backoff = 0.5
        while True:
            producer = create_producer(self.settings)
            try:
                await ensure_topics(self.settings)
                await asyncio.wait_for(producer.start(), self.settings.kafka_request_timeout)
            except (KafkaError, HubError, OSError, TimeoutError) as exc:
                with contextlib.suppress(Exception):  # a half-started client may raise
                    await producer.stop()
                if isinstance(exc, TopicPolicyError):  # an operator's fix, named in the error
                    log.error("topic policy violated", error=str(exc), retry_in=backoff)
                else:
                    log.warning("kafka not reachable yet", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            self._producer = producer
            self._ready.set()
            KAFKA_READY.set(1)
            log.info("kafka producer connected", bootstrap=self.settings.kafka_bootstrap)
            return

    async def publish(
        self,
        records: Sequence[RawMessage],
        *,
        source: str,
        parts: Mapping[str, bytes] | None = None,
    ) -> Published:
        """Produce `records` to raw-messages keyed by user id, and a media fetch job per
        attachment (`parts`: bytes already in hand, by attachment id); return after all
        are acked."""
        fresh: list[RawMessage] = []
        keys: list[tuple[str, int]] = []
        for record in records:
            # Text is part of the key so that an edit (same id, new text) still goes out.
            key = (record.id, hash(record.text))
            if key in self._recent or key in keys:
                DUPLICATES_DROPPED.labels(record.platform).inc()
                continue
            fresh.append(record)
            keys.append(key)
        if fresh:
            topic = self.topics.raw_messages
            items = [(topic, r.user_id.encode(), r.to_json()) for r in fresh]
            # Beside the text, never in front of it: the job is only a request to fetch.
            items += fetch_jobs(self.topics.media_fetch, fresh, parts, self.settings)
            await self._send(items)
            self._recent.add(keys)
            for record in fresh:
                _produced(record.platform, source).inc()
        return Published(len(fresh), len(records) - len(fresh))

    async def commands(self, records: Sequence[AnyCommand]) -> None:
        """Produce commands to hub.commands keyed by user id; return after all are acked."""
        if records:
            topic = self.topics.commands
            await self._send([(topic, r.user_id.encode(), r.to_json()) for r in records])

    async def dead_letter(
        self,
        *,
        reason: str,
        error_type: str,
        platform: str,
        account_id: str,
        payload: bytes,
        source: DeadLetterSource | None = None,
    ) -> None:
        """Record an authentic but unprocessable input, keyed by account id; acked on return.
        `source` names a topic position when the input came from one."""
        text, encoding = DeadLetter.encode_payload(payload)
        letter = DeadLetter(
            reason=reason,
            error_type=error_type,
            source=source or DeadLetterSource(platform=platform, account_id=account_id),
            payload=text,
            payload_encoding=encoding,
            failed_at=utc_now(),
        )
        await self._send([(self.topics.dead_letter, account_id.encode(), letter.to_json())])
        DEAD_LETTERS.labels(platform).inc()

    async def dead_letter_invalid(self, record: ConsumerRecord, exc: ValidationError) -> None:
        """Dead-letter a consumed record its schema refused, naming the first bad field."""
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        await self.dead_letter(
            reason=f"{where}: {first.get('msg', 'invalid')}",
            error_type="validation_error",
            platform="",
            account_id=(record.key or b"").decode(errors="replace"),
            payload=record.value or b"",
            source=DeadLetterSource(
                topic=record.topic, partition=record.partition, offset=record.offset
            ),
        )

    async def _send(self, items: list[tuple[str, bytes, bytes]]) -> None:
        timeout = self.settings.kafka_request_timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
                assert self._producer is not None
                producer = self._producer
                futures = [await producer.send(t, value=v, key=k) for t, k, v in items]
                if len(futures) == 1:  # a webhook's usual one record: no gather to set up
                    await futures[0]
                else:
                    await asyncio.gather(*futures)
        except TimeoutError:
            self._replace_if_broken()
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {timeout:g}s", fix="retry later"
            ) from None
        except MessageSizeTooLargeError as exc:
            raise BodyTooLarge(f"the normalized record is too large for Kafka: {exc}") from None
        except KafkaError as exc:
            self._replace_if_broken()
            raise KafkaUnavailable(f"Kafka refused the records: {exc}", fix="retry later") from None
        PRODUCE_SECONDS.observe(time.perf_counter() - started)

    def _replace_if_broken(self) -> None:
        # An idempotent producer retries a batch until the broker takes it, so a broker
        # outage heals by itself. Its sender task ends only on a fatal error (fenced, out
        # of order sequence): then nothing would ever be delivered again - start afresh.
        sender = getattr(self._producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is None or not task.done():
            return
        if self._connector is not None and not self._connector.done():
            return
        old, self._producer = self._producer, None
        self._ready.clear()
        KAFKA_READY.set(0)
        log.error("kafka producer failed for good, replacing it")
        self._connector = asyncio.create_task(self._reconnect(old), name="kafka-reconnect")

    async def _reconnect(self, old: AIOKafkaProducer | None) -> None:
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), self.settings.kafka_request_timeout)
        await self._connect()
