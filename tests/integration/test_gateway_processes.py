"""Two `hub gateway` processes at once: each delivers every event to its own clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hubcore.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.integration.gateway_kit import (
    DEADLINE,
    GatewayAddress,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    token,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def gateway_process(settings: Settings, log: Path) -> Iterator[GatewayAddress]:
    """`hub gateway` as a child process on a free port; stopped with SIGTERM."""
    port = _free_port()
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_MONGO_URL": settings.mongo_url,
        "HUB_MONGO_DB": settings.mongo_db,
        "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
        "HUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "HUB_JWT_SECRET": TEST_JWT_SECRET,
        "HUB_HOST": "127.0.0.1",
        "HUB_GATEWAY_PORT": str(port),
        "HUB_LOG_FORMAT": "json",
    }
    hub = Path(sys.executable).with_name("hub")
    with log.open("wb") as out:
        process = subprocess.Popen([str(hub), "gateway"], env=env, stdout=out, stderr=out)
    try:
        yield GatewayAddress(port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
        assert "Application shutdown complete" in log.read_text()


async def _healthy(address: GatewayAddress, log: Path) -> None:
    """Wait until the process answers /health with 200 (its consumer is positioned)."""
    async with httpx.AsyncClient(base_url=address.base_url, timeout=2) as client:
        for _ in range(int(DEADLINE * 2 / 0.25)):
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"gateway on :{address.port} never became healthy; see {log}")


async def test_two_gateway_processes_each_deliver_to_their_own_clients(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        gateway_process(settings, tmp_path / "gw1.log") as gw1,
        gateway_process(settings, tmp_path / "gw2.log") as gw2,
    ):
        await asyncio.gather(
            _healthy(gw1, tmp_path / "gw1.log"), _healthy(gw2, tmp_path / "gw2.log")
        )
        alice_on_1 = await open_ws(gw1, token(settings, "alice"))
        alice_on_2 = await open_ws(gw2, token(settings, "alice"))
        bob_on_2 = await open_ws(gw2, token(settings, "bob"))

        await produce(settings, [new_message("alice", n) for n in range(3)])
        for ws in (alice_on_1, alice_on_2):
            assert ids(await recv_events(ws, 3)) == [f"evt_alice_{n}" for n in range(3)]
        await produce(settings, [new_message("bob", 0)])
        assert ids(await recv_events(bob_on_2, 1)) == ["evt_bob_0"]

        async with httpx.AsyncClient(base_url=gw2.base_url) as client:
            websocket = (await client.get("/health")).json()["services"]["websocket"]
        assert websocket == {"status": "ok", "connections": 2, "authenticatedUsers": 2}
        for ws in (alice_on_1, alice_on_2, bob_on_2):
            await ws.close()
