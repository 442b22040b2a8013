"""Helpers of the gateway's integration tests: a real uvicorn gateway, tokens, events, clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from gateway.app import GatewayApp
from gateway.server import build_server, serve
from hub.tokens import mint_token
from hubcore.kafka import Topics, create_producer
from hubcore.settings import Settings
from schemas import Message, NewMessage, NewMessageData, Sender, UserEvent
from schemas.base import utc_now
from tests.resources import security_env

DEADLINE = 15.0  # seconds any single wait in these tests may take before it fails


@dataclass(frozen=True)
class GatewayAddress:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass(frozen=True)
class RunningGateway(GatewayAddress):
    app: GatewayApp


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A real uvicorn (websockets-sansio) serving `create_app(settings)` on a free port,
    returned once its Kafka consumer is positioned, so every later event is delivered."""
    app, server = build_server(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    task = asyncio.create_task(serve(server, sock))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("gateway server stopped during startup")
                await asyncio.sleep(0.05)
            await app.runtime.pump.ready.wait()
        yield RunningGateway(sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task
        sock.close()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `hub gateway` child process serving `settings` on `port`."""
    assert settings.jwt_secret is not None
    return {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_MONGO_URL": settings.mongo_url,
        "HUB_MONGO_DB": settings.mongo_db,
        "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
        "HUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "HUB_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        **security_env(settings),
        "HUB_HOST": "127.0.0.1",
        "HUB_GATEWAY_PORT": str(port),
        **extra,
    }


def token(settings: Settings, user_id: str, ttl: float = 600) -> str:
    """A valid token of `user_id` from the configured secret."""
    return mint_token(settings, user_id, timedelta(seconds=ttl))


def new_message(user_id: str, n: int, conversation_id: str = "conv_test") -> NewMessage:
    """A `new_message` user event; `n` makes its ids and text unique."""
    now = utc_now()
    message = Message(
        id=f"msg_{user_id}_{n}",
        platform="generic",
        account_id="acc_test",
        conversation_id=conversation_id,
        sender=Sender(id="sender", name="Sender"),
        text=f"message {n} for {user_id}",
        sent_at=now,
        received_at=now,
    )
    return NewMessage(
        id=f"evt_{user_id}_{n}",
        user_id=user_id,
        occurred_at=now,
        data=NewMessageData(message=message),
    )


async def produce(settings: Settings, events: Iterable[UserEvent]) -> list[str]:
    """Put user events on the user-events topic, keyed by user; their cursors, in order."""
    producer = create_producer(settings)
    await producer.start()
    try:
        topic = Topics.from_settings(settings).user_events
        # Sent back to back (one batch), acknowledged together; order per key is kept.
        pending = [
            await producer.send(topic, key=event.user_id.encode(), value=event.to_json())
            for event in events
        ]
        return [f"{meta.partition}-{meta.offset}" for meta in await asyncio.gather(*pending)]
    finally:
        await producer.stop()


async def recv_frame(ws: ClientConnection, timeout: float = DEADLINE) -> dict[str, Any]:
    """The next frame, parsed; fails the test when none arrives in time."""
    async with asyncio.timeout(timeout):
        raw = await ws.recv()
    frame: dict[str, Any] = orjson.loads(raw)
    return frame


async def recv_events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` frames, each of which must be an event frame."""
    frames = [await recv_frame(ws) for _ in range(count)]
    for frame in frames:
        assert set(frame) == {"type", "id", "cursor", "occurredAt", "data"}, frame
    return frames


async def frames_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the server sends until it closes, and its close code."""
    frames = []
    async with asyncio.timeout(DEADLINE):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                frames.append(orjson.loads(await ws.recv()))
    return frames, ws.close_code


async def open_ws(
    gateway: GatewayAddress,
    jwt: str | None = None,
    *,
    resume_from: str | None = None,
    origin: str | None = None,
) -> ClientConnection:
    """A WebSocket to `/ws`; with `jwt`, authenticated (the `authenticated` frame read)."""
    ws = await websockets.connect(
        gateway.ws_url,
        origin=origin,  # type: ignore[arg-type]
        max_size=None,
        open_timeout=DEADLINE,
    )
    if jwt is not None:
        frame: dict[str, Any] = {"type": "authenticate", "token": jwt}
        if resume_from is not None:
            frame["resumeFrom"] = resume_from
        await ws.send(orjson.dumps(frame).decode())
        answer = await recv_frame(ws)
        assert answer["type"] == "authenticated", answer
    return ws


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` after DEADLINE seconds."""
    for _ in range(int(DEADLINE / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_healthy(address: GatewayAddress, log: Path) -> None:
    """Wait until a gateway process answers /health with 200 (its consumer is positioned)."""
    async with httpx.AsyncClient(base_url=address.base_url, timeout=2) as client:
        for _ in range(int(DEADLINE * 2 / 0.25)):
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"gateway on :{address.port} never became healthy; see {log}")


def ids(frames: list[dict[str, Any]]) -> list[str]:
    """The event ids of frames, in order."""
    return [frame["id"] for frame in frames]
