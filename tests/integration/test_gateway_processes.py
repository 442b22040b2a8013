"""Two `hub gateway` processes at once: each delivers every event to its own clients."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    GatewayAddress,
    free_port,
    gateway_env,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    token,
    wait_healthy,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@contextmanager
def gateway_process(settings: Settings, log: Path) -> Iterator[GatewayAddress]:
    """`hub gateway` as a child process on a free port; stopped with SIGTERM."""
    port = free_port()
    env = gateway_env(settings, port, HUB_LOG_FORMAT="json")
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


async def test_two_gateway_processes_each_deliver_to_their_own_clients(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        gateway_process(settings, tmp_path / "gw1.log") as gw1,
        gateway_process(settings, tmp_path / "gw2.log") as gw2,
    ):
        await asyncio.gather(
            wait_healthy(gw1, tmp_path / "gw1.log"), wait_healthy(gw2, tmp_path / "gw2.log")
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
