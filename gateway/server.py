"""Serving the gateway with uvicorn, configured for the push path."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from gateway.app import GatewayApp, create_app
from hubcore.logging import configure_logging
from hubcore.settings import Settings


def uvicorn_config(app: GatewayApp, settings: Settings) -> uvicorn.Config:
    """uvicorn settings of the gateway.

    `websockets-sansio` writes a frame straight to the transport, with no task per write
    (25k against 15k frames/s for uvicorn's default implementation on this machine; with
    the gateway's outbox, `bench/gateway_push.py` measures 17-20 us of server CPU per
    frame). Its `ws_max_size` closes oversized client frames with 1009 before they reach
    the app, and its pings keep idle sockets alive.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.gateway_port,
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout or settings.ws_ping_interval,
        ws_per_message_deflate=False,  # per-socket compression would undo encode-once
        lifespan="on",
        log_config=None,  # structlog (configure_logging) owns the handlers
        access_log=False,  # RequestLog writes one line per request instead
        timeout_graceful_shutdown=10,
        # Longer than the idle timeout of the clients and proxies that reuse connections
        # (httpx 5 s, nginx upstream 60 s): a server that closes an idle connection first
        # races the client's next request on it, which then fails with a reset.
        timeout_keep_alive=75,
        # Only these peers' X-Forwarded-For is believed: per-IP limits key on the result.
        proxy_headers=True,
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


class GatewayServer(uvicorn.Server):
    """uvicorn's server ticking once a second instead of ten times.

    uvicorn wakes every 100 ms to see whether it should exit and, every tenth time, to
    renew its `Date` header: half of an idle gateway's wake-ups and of its idle CPU
    (issue 21). Here the tick renews the header every time, once a second, and an exit
    (a signal, or `should_exit` set by whoever runs the server) ends the wait at once.
    """

    TICK_SECONDS = 1.0

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = False
        self._tick: asyncio.Future[None] | None = None
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        if value and self._tick is not None and not self._tick.done():
            self._tick.set_result(None)

    async def main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        counter = 0  # a multiple of 10: on_tick's once-a-second work, every time
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            self._tick = tick = loop.create_future()
            timer = loop.call_later(self.TICK_SECONDS, _resolve, tick)
            await tick
            timer.cancel()
            should_exit = await self.on_tick(counter)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def build_server(settings: Settings) -> tuple[GatewayApp, uvicorn.Server]:
    """The app and a uvicorn server for it (not started)."""
    app = create_app(settings)
    return app, GatewayServer(uvicorn_config(app, settings))


async def serve(server: uvicorn.Server, sock: socket.socket | None = None) -> None:
    """Run `server` until it is told to exit; `sock` is an already bound listening socket."""
    await server.serve(sockets=[sock] if sock is not None else None)


def run(settings: Settings) -> None:
    """Entry point of `hub gateway`: serve until SIGINT/SIGTERM.

    Raises `SettingsError` (before serving) when the token key is missing or unusable.
    """
    configure_logging(settings.log_level, settings.log_format)
    _, server = build_server(settings)
    server.run()
