"""A Kafka restart under an open gateway: sockets stay, nothing is lost or sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hub.provision.kafka import KafkaServer
from hubcore.kafka import kafka_ping
from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    running_gateway,
    token,
)
from tests.local_servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KAFKA_VERSION = "4.1.1"


def _jars_home() -> Path | None:
    """A services dir that already holds the Kafka jars (this checkout's, or the main one)."""
    for home in (Path(".hub"), Path("/work/main/.hub")):
        if (home / "kafka" / KAFKA_VERSION / "libs" / ".complete").exists():
            return home.resolve()
    return None


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of this test's own (the shared one is never stopped), data under tmp_path."""
    jars = _jars_home()
    if jars is None:
        pytest.skip("no downloaded Kafka jars (run `hub services up` once)")
    (tmp_path / "kafka").symlink_to(jars / "kafka")
    server = KafkaServer(
        tmp_path,
        KAFKA_VERSION,
        port=free_port(),
        controller_port=free_port(),
        name=f"gw-restart-{uuid.uuid4().hex[:8]}",
        heap="512m",
    )
    argv = server.prepare()
    server.process.start(argv)
    try:
        yield server
    finally:
        server.process.stop()


async def _wait_for_broker(server: KafkaServer) -> None:
    for _ in range(120):
        if await kafka_ping(server.bootstrap, timeout=1.0):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"private Kafka did not start:\n{server.process.log_tail()}")


async def test_kafka_restart_loses_and_repeats_nothing(
    private_kafka: KafkaServer, settings_factory: Callable[..., Settings]
) -> None:
    await _wait_for_broker(private_kafka)
    s = settings_factory(kafka_bootstrap=private_kafka.bootstrap, topic_partitions=2)
    async with running_gateway(s) as gw:
        ws = await open_ws(gw, token(s, "alice"))
        await produce(s, [new_message("alice", 0)])
        assert ids(await recv_events(ws, 1)) == ["evt_alice_0"]

        await asyncio.to_thread(private_kafka.process.stop)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
            down = await http.get("/health")
        assert down.status_code == 503 and down.json()["services"]["kafka"]["status"] == "down"
        private_kafka.process.start(private_kafka.prepare())
        await _wait_for_broker(private_kafka)

        # The socket outlived the broker: later events arrive once, in order.
        cursors = await produce(s, [new_message("alice", n) for n in (1, 2)])
        frames = await recv_events(ws, 2)
        assert ids(frames) == ["evt_alice_1", "evt_alice_2"]
        assert [f["cursor"] for f in frames] == cursors
        await ws.close()

        # And a resume across the restart reads the history that survived it.
        await produce(s, [new_message("alice", 3)])
        resumed = await open_ws(gw, token(s, "alice"), resume_from=cursors[-1])
        assert ids(await recv_events(resumed, 1)) == ["evt_alice_3"]
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
            up = await http.get("/health")
        assert up.status_code == 200, up.json()
        await resumed.close()
