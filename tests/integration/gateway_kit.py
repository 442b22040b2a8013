"""Helpers of the gateway's integration tests: a real uvicorn gateway, tokens, events, clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from gateway.app import GatewayApp
from gateway.connection import WsConnection
from gateway.pump import EventPump
from gateway.server import build_server, serve
from hub.tokens import mint_token
from hubcore.kafka import Topics, create_producer
from hubcore.settings import Settings
from schemas import Message, NewMessage, NewMessageData, Sender, UserEvent
from schemas.base import utc_now
from tests.local_servers import free_port
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
async def serving(server: uvicorn.Server) -> AsyncIterator[int]:
    """Run `server` on a free loopback port; yields the port once it serves, stops after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    task = asyncio.create_task(serve(server, sock))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.05)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A real uvicorn (websockets-sansio) serving `create_app(settings)` on a free port,
    returned once its Kafka consumer is positioned, so every later event is delivered."""
    app, server = build_server(settings)
    async with serving(server) as port:
        async with asyncio.timeout(30):
            await app.runtime.pump.ready.wait()
        yield RunningGateway(port, app)


def user_client(gateway: GatewayAddress, settings: Settings, user_id: str) -> httpx.AsyncClient:
    """An HTTP client of the gateway acting as `user_id` (a valid Bearer token)."""
    return httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {token(settings, user_id)}"},
        timeout=15,
    )


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


def big_message(user_id: str, n: int) -> NewMessage:
    """A `new_message` event of about 30 kB (fills socket buffers fast)."""
    event = new_message(user_id, n)
    message = event.data.message.model_copy(update={"text": "x" * 30_000})
    return event.model_copy(update={"data": NewMessageData(message=message)})


def dispatched(pump: EventPump, cursor: str) -> Callable[[], bool]:
    """True once the gateway's pump has routed the event at `cursor`."""
    partition, offset = map(int, cursor.split("-"))
    return lambda: (pump.position(partition) or 0) > offset


async def flood_until_closed(
    settings: Settings, pump: EventPump, conn: WsConnection, user_id: str
) -> int:
    """Produce big events of `user_id` in rounds of 50 (1.5 MB) until the gateway closes
    `conn` (kernel buffers vary), at most 20 rounds; how many were produced."""
    sent = 0
    for _ in range(20):
        cursors = await produce(settings, [big_message(user_id, n) for n in range(sent, sent + 50)])
        sent += 50
        await eventually(dispatched(pump, cursors[-1]), "the pump to dispatch")
        if conn.close_code is not None:
            break
    return sent


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


Frames = list[dict[str, Any]]


async def frames_until(ws: ClientConnection, done: Callable[[Frames], bool]) -> Frames:
    """Frames (pongs left out) until `done` says the list is complete; each within 30 s."""
    frames: Frames = []
    while not done(frames):
        frame = await recv_frame(ws, timeout=30)
        if frame["type"] != "pong":
            frames.append(frame)
    return frames


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


def ids(frames: list[dict[str, Any]]) -> list[str]:
    """The event ids of frames, in order."""
    return [frame["id"] for frame in frames]


# --- the real npm socket.io-client (tests/node/sio_driver.mjs) -------------------------
JS_DIR = Path(__file__).resolve().parents[1] / "node"


def require_socketio_client() -> None:
    """Fail clearly when tests/node's packages are not installed."""
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        raise AssertionError("socket.io-client is not installed: run scripts/node-packages.sh")


class SioClient:
    """One socket.io-client in a node child process; what it sees arrives as dicts."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()

    async def next(self, timeout: float = DEADLINE) -> dict[str, Any]:
        """The next thing the client saw (a `driver_error` fails the test)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        assert line, "the socket.io-client driver exited"
        seen: dict[str, Any] = orjson.loads(line)
        assert seen["ev"] != "driver_error", seen
        self.seen.append(seen)
        return seen

    async def until(
        self, ev: str, timeout: float = DEADLINE
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read until an `ev`; it and what came before it."""
        before: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while (seen := await self.next())["ev"] != ev:
                    before.append(seen)
        except TimeoutError:
            raise AssertionError(f"no {ev!r}; the client saw {self.seen}") from None
        return seen, before

    async def events(self, count: int, name: str = "new_message") -> list[dict[str, Any]]:
        """The next `count` events called `name`, skipping transport notices."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            seen = await self.next()
            if seen["ev"] == name:
                found.append(seen)
            else:
                assert seen["ev"] in ("upgrade", "connect", "authenticated"), seen
        return found


@contextlib.asynccontextmanager
async def sio_client(url: str, **connect: Any) -> AsyncIterator[SioClient]:
    """socket.io-client connected to `url` with `connect` options (see sio_driver.mjs)."""
    require_socketio_client()
    process = await asyncio.create_subprocess_exec(
        "node",
        str(JS_DIR / "sio_driver.mjs"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    client = SioClient(process)
    try:
        await client.send(op="connect", url=url, **connect)
        yield client
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def event_ids(seen: list[dict[str, Any]]) -> list[str]:
    """The message ids of `new_message` events a SioClient saw, in order."""
    return [s["data"]["message"]["id"] for s in seen if s["ev"] == "new_message"]


# --- `hub gateway` child processes ---------------------------------------------------------
@dataclass(frozen=True)
class ChildGateway(GatewayAddress):
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: the process dies with its sockets open, as in a crash."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def gateway_process(settings: Settings, log: Path, **env: str) -> Iterator[ChildGateway]:
    """`hub gateway` as a child process on a free port; stopped with SIGTERM (and checked
    to shut down cleanly) unless the test killed it."""
    port = free_port()
    environ = gateway_env(settings, port, HUB_LOG_FORMAT="json", **env)
    hub = Path(sys.executable).with_name("hub")
    with log.open("wb") as out:
        process = subprocess.Popen([str(hub), "gateway"], env=environ, stdout=out, stderr=out)
    child = ChildGateway(port, process, log)
    try:
        yield child
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
            assert "Application shutdown complete" in log.read_text()


async def healthy(address: GatewayAddress, log: Path) -> None:
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


@contextlib.asynccontextmanager
async def two_gateway_processes(
    settings: Settings, logs: Path, **env: str
) -> AsyncIterator[tuple[ChildGateway, ChildGateway]]:
    """Two healthy `hub gateway` processes of the same settings (logs in `logs`), with
    `env` added to their environment."""
    with (
        gateway_process(settings, logs / "gw1.log", **env) as gw1,
        gateway_process(settings, logs / "gw2.log", **env) as gw2,
    ):
        await asyncio.gather(healthy(gw1, gw1.log), healthy(gw2, gw2.log))
        yield gw1, gw2
