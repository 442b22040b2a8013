"""Everything a gateway process holds: clients, the pump, resume, Socket.IO; start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from gateway.attachments import AttachmentService
from gateway.auth import TokenVerifier
from gateway.commands import ReadCommands
from gateway.inbox import Inbox
from gateway.limits import ConnectionLimits
from gateway.presence import PresencePublisher
from gateway.pump import EventPump
from gateway.registry import Registry
from gateway.resume import ResumeService
from gateway.sio import SocketIOGateway
from gateway.websocket import WebSocketEndpoint
from hubcore.accounts import AccountStore
from hubcore.attachments import ensure_attachment_indexes
from hubcore.blobs import blob_store
from hubcore.kafka import Topics, create_producer
from hubcore.mongo import create_client, database, ensure_indexes
from hubcore.ratelimit import RateLimiter
from hubcore.retry import Backoff
from hubcore.settings import Settings
from hubcore.webhooks import WebhookStore

log = structlog.get_logger("gateway")

HEALTH_TIMEOUT = 2.0
# Starting the producer while Kafka is away: 0.5 s doubling to 5 s, forever.
_RECONNECT = Backoff(first=0.5, max_delay=5.0)


class Runtime:
    """Built by `create_app`; `start()`/`stop()` run from the ASGI lifespan.

    Kafka may be away at start: the pump and the producer connect in the background and
    retry, while `/health` says `degraded` and mark-read answers 503.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.verifier = TokenVerifier(settings)
        self.mongo = create_client(settings.mongo_url)
        self.db = database(self.mongo, settings)
        self.accounts = AccountStore(self.db, settings)
        self.webhooks = WebhookStore(self.db, settings)
        self.rest_limit = RateLimiter(settings.rate_rest_per_user)
        self.limits = ConnectionLimits(settings)  # /ws and Socket.IO share them
        self.registry = Registry()
        self.inbox = Inbox(self.db, self.registry.fresh)
        self.attachments = AttachmentService(self.db, blob_store(settings, self.db), settings)
        self.producer: AIOKafkaProducer | None = None
        self.commands = ReadCommands(self.inbox, lambda: self.producer, self.topics)
        self.pump = EventPump(settings, self.registry)
        self.resume = ResumeService(settings)
        self.socketio = SocketIOGateway(
            settings, self.verifier, self.registry, self.pump, self.resume, self.limits
        )
        self.websocket = WebSocketEndpoint(
            settings, self.verifier, self.registry, self.pump, self.resume, self.limits
        )
        self.presence = PresencePublisher(
            settings, lambda: self.producer, lambda: self.registry.connections()
        )
        self.registry.observer = self.presence.observe
        self._tasks: list[asyncio.Task[None]] = []
        self._presence_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the background work; returns at once."""
        self._tasks = [
            asyncio.create_task(self.pump.run(), name="gateway-pump"),
            asyncio.create_task(self._start_producer(), name="gateway-producer"),
            asyncio.create_task(self._ensure_indexes(), name="gateway-indexes"),
        ]
        self._presence_task = asyncio.create_task(self.presence.run(), name="gateway-presence")

    async def stop(self) -> None:
        """Stop everything started, in reverse order of dependence."""
        await self.socketio.close()
        if self._presence_task is not None:
            self._presence_task.cancel()
            await asyncio.gather(self._presence_task, return_exceptions=True)
            await self.presence.close()  # this gateway's devices go at once
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.resume.close()
        await self.attachments.blobs.aclose()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        await self.mongo.close()

    async def _start_producer(self) -> None:
        failures = 0
        while True:
            producer = create_producer(self.settings)
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                failures += 1
                delay = _RECONNECT.delay(failures)
                log.warning("producer_retry", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                continue
            self.producer = producer
            return

    async def _ensure_indexes(self) -> None:
        try:
            await ensure_indexes(self.db)
            await ensure_attachment_indexes(self.db)
            await self.webhooks.ensure_indexes()
        except PyMongoError as exc:  # reads still work, only slower; streams creates them too
            log.warning("indexes_not_ensured", error=str(exc))

    # --- health -----------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """The `services` part of `/health`: kafka and mongodb `ok` or `down`, the seed's
        `database` (`connected`/`disconnected`), websocket `active` while serving."""
        kafka, mongodb = await asyncio.gather(self._kafka_health(), self._mongo_health())
        pump_task = self._tasks[0] if self._tasks else None
        if pump_task is None or pump_task.done():
            ws_status = "down"
        elif self.pump.ready.is_set():
            ws_status = "active"  # the seed's value
        else:
            ws_status = "starting"
        websocket = {
            "status": ws_status,
            "connections": self.websocket.open_connections + self.socketio.open_sockets,
            "authenticatedUsers": self.registry.authenticated_users(),
        }
        database = "connected" if mongodb["status"] == "ok" else "disconnected"
        return {"kafka": kafka, "mongodb": mongodb, "database": database, "websocket": websocket}

    async def _kafka_health(self) -> dict[str, Any]:
        producer = self.producer
        if producer is None:
            return {"status": "down", "error": "not connected yet"}
        started = time.perf_counter()
        try:
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), HEALTH_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as exc:
            return {"status": "down", "error": str(exc) or type(exc).__name__}
        return {
            "status": "ok",
            "latencyMs": round((time.perf_counter() - started) * 1000, 1),
            "brokers": len(metadata.brokers()),
        }

    async def _mongo_health(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.db.command("ping"), HEALTH_TIMEOUT)
        except (PyMongoError, OSError, TimeoutError) as exc:
            return {"status": "down", "error": str(exc)[:200] or type(exc).__name__}
        return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 1)}
