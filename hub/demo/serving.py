"""Serve an ASGI stand-in in the running event loop, on loopback only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp


@asynccontextmanager
async def serving_app(
    app: ASGIApp, what: str, on_exit: Callable[[], None] | None = None, port: int = 0
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (`port` 0: a free one); yields its base URL. `on_exit`
    runs before the server stops (release what its handlers wait on)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}")
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        if on_exit is not None:
            on_exit()
        server.should_exit = True
        server.force_exit = True
        await task
