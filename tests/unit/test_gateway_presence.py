"""The gateway's presence publisher: order, heartbeats to every partition, re-announcing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.connection import WsConnection
from gateway.presence import PresencePublisher
from gateway.registry import Registry
from hubcore.settings import Settings

PARTITIONS = 3


class Producer:
    """Records what is sent; fails while `down` is set (a broker away)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, dict[str, Any], int | None]] = []
        self.down = False
        self.failures = 0
        self.changed = asyncio.Event()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.down:
            self.failures += 1
            future.set_exception(OSError("broker away"))
        else:
            self.sent.append((key, orjson.loads(value), partition))
            future.set_result(None)
        self.changed.set()
        return future

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(v["kind"], v.get("connectionId")) for _, v, _ in self.sent]

    async def until(self, done: Any) -> None:
        async with asyncio.timeout(10):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def _conn(registry: Registry, user: str, *, socketio: bool = False) -> WsConnection:
    conn = WsConnection(None, 8, socketio=socketio)
    conn.bind(user)
    registry.add_ws(conn)
    return conn


@contextlib.asynccontextmanager
async def _publishing(lease: float) -> AsyncIterator[tuple[Producer, Registry, PresencePublisher]]:
    """A publisher (a heartbeat every 50 ms) of a registry's changes, running until the
    block ends, sending to a `Producer`."""
    settings = Settings(presence_heartbeat_s=0.05, presence_lease_s=lease, _env_file=None)
    producer = Producer()
    registry = Registry()
    publisher = PresencePublisher(settings, lambda: producer, registry.connections)
    registry.observer = publisher.observe
    task = asyncio.create_task(publisher.run())
    try:
        yield producer, registry, publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_changes_go_out_in_order_and_heartbeats_to_every_partition() -> None:
    async with _publishing(lease=60) as (producer, registry, publisher):
        ann = _conn(registry, "ann")
        bob = _conn(registry, "bob", socketio=True)
        registry.remove_ws(ann)
        await producer.until(lambda: len(producer.kinds()) >= PARTITIONS + 3)
        changes = [(k, v) for k, v, p in producer.sent if v["kind"] != "heartbeat"]
        assert [(k, v["kind"], v["clientKind"]) for k, v in changes] == [
            (b"ann", "connect", "ws"),
            (b"bob", "connect", "socketio"),
            (b"ann", "disconnect", "ws"),
        ]
        beats = [p for _, v, p in producer.sent if v["kind"] == "heartbeat"]
        assert set(beats[:PARTITIONS]) == set(range(PARTITIONS))
        assert {v["gatewayId"] for _, v, _ in producer.sent} == {publisher.gateway_id}
        assert bob.id in {v.get("connectionId") for _, v, _ in producer.sent}
    await publisher.close()
    assert [v["kind"] for _, v, _ in producer.sent[-PARTITIONS:]] == ["gateway_down"] * 3


async def test_a_gateway_silent_for_a_lease_announces_its_connections_again() -> None:
    lease = 0.2
    async with _publishing(lease) as (producer, registry, _):
        cy = _conn(registry, "cy")
        await producer.until(lambda: ("connect", cy.id) in producer.kinds())
        producer.down = True  # longer than the lease: the workers expire this gateway
        await producer.until(lambda: producer.failures >= 1)
        await asyncio.sleep(lease)  # the silence is what is tested
        producer.down = False
        await producer.until(lambda: producer.kinds().count(("connect", cy.id)) == 2)
