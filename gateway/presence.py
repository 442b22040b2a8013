"""What this gateway tells `hub.presence`: its connects, disconnects and heartbeats.

The registry calls `observe` when a connection starts or stops receiving its user's events
(authenticated, then gone); the record is queued without an await and a background task
sends the queue in order through the gateway's producer. Every `HUB_PRESENCE_HEARTBEAT_S`
the task tells every partition this gateway is alive; a clean shutdown says `gateway_down`
so its devices go at once, while a killed gateway's expire after `HUB_PRESENCE_LEASE_S`
(streams/presence.py decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.connection import WsConnection
from gateway.metrics import PRESENCE_DROPPED, PRESENCE_SENT
from hubcore.kafka import Topics
from hubcore.settings import Settings
from schemas.base import utc_now
from schemas.presence import PresenceKind, PresenceRecord

log = structlog.get_logger("gateway.presence")

# Records kept while Kafka is away; past it the oldest are dropped (and counted): the
# devices they concern are settled at the latest when this gateway's lease expires.
MAX_QUEUED = 100_000
_RETRY_SECONDS = 1.0
_CLOSE_TIMEOUT = 3.0


def gateway_id(settings: Settings) -> str:
    """`HUB_GATEWAY_ID` (else `<host>-<pid>`) and a suffix new at every start: a gateway
    restarted under the same name must not keep its previous run's devices alive."""
    name = settings.gateway_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{name}-{secrets.token_hex(3)}"


class PresencePublisher:
    """Queues this gateway's connection changes and sends them, with heartbeats."""

    def __init__(
        self,
        settings: Settings,
        producer: Callable[[], AIOKafkaProducer | None],
        live: Callable[[], Iterable[WsConnection]] = tuple,
    ) -> None:
        self.gateway_id = gateway_id(settings)
        self._topic = Topics.from_settings(settings).presence
        self._interval = settings.presence_heartbeat_s
        self._lease = settings.presence_lease_s
        self._producer = producer
        self._live = live  # this gateway's connections now (the registry's)
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._wake = asyncio.Event()

    # --- called by the registry (never awaits) ----------------------------------------
    def observe(self, conn: WsConnection, live: bool) -> None:
        """`conn` began (`live`) or stopped receiving its user's events."""
        record = PresenceRecord(
            kind="connect" if live else "disconnect",
            gateway_id=self.gateway_id,
            at=utc_now(),
            user_id=conn.user_id,
            connection_id=conn.id,
            client_kind="socketio" if conn.socketio else "ws",
        )
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            PRESENCE_DROPPED.inc()
        self._queue.append((conn.key, record.to_json()))
        self._wake.set()

    def _announce_all(self) -> None:
        """Queue a connect for every live connection: after this gateway could not
        heartbeat for a lease, the workers have dropped its devices (a repeated connect of
        a device they still have changes nothing)."""
        for conn in list(self._live()):
            self.observe(conn, True)

    # --- the sender ---------------------------------------------------------------------
    async def run(self) -> None:
        """Send queued records as they come and a heartbeat every interval, until cancelled."""
        next_beat = 0.0
        last_beat = time.monotonic()
        while True:
            producer = self._producer()
            if producer is None:  # Kafka not reached yet: the runtime keeps trying
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            try:
                if time.monotonic() >= next_beat:
                    await self._to_every_partition(producer, "heartbeat")
                    if time.monotonic() - last_beat > self._lease:
                        log.warning(
                            "presence_reannounced", silent_s=round(time.monotonic() - last_beat)
                        )
                        self._announce_all()
                    last_beat = time.monotonic()
                    next_beat = last_beat + self._interval
                await self._send_queued(producer)
            except (KafkaError, OSError) as exc:
                log.warning("presence_send_failed", error=str(exc), retry_in=_RETRY_SECONDS)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            self._wake.clear()
            if not self._queue:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), max(0.0, next_beat - time.monotonic())
                    )

    async def close(self) -> None:
        """Send what is queued, then `gateway_down` (a clean shutdown); bounded in time."""
        producer = self._producer()
        if producer is None:
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._send_queued(producer)
                await self._to_every_partition(producer, "gateway_down")
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("presence_goodbye_failed", error=str(exc) or type(exc).__name__)

    async def _send_queued(self, producer: AIOKafkaProducer) -> None:
        """Send the queue in order; a failed chunk is sent again whole (repeats are no-ops
        to the presence table, and nothing queued later goes before it)."""
        while self._queue:
            chunk = list(self._queue)
            self._queue.clear()
            try:
                futures = [
                    await producer.send(self._topic, key=key, value=value) for key, value in chunk
                ]
                await asyncio.gather(*futures)
            except BaseException:
                self._queue.extendleft(reversed(chunk))
                raise
            PRESENCE_SENT.inc(len(chunk))

    async def _to_every_partition(self, producer: AIOKafkaProducer, kind: PresenceKind) -> None:
        value = PresenceRecord(kind=kind, gateway_id=self.gateway_id, at=utc_now()).to_json()
        key = self.gateway_id.encode()
        partitions = sorted(await producer.partitions_for(self._topic))
        futures = [
            await producer.send(self._topic, key=key, value=value, partition=p) for p in partitions
        ]
        await asyncio.gather(*futures)
        PRESENCE_SENT.inc(len(futures))
