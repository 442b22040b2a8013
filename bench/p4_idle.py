"""P4 (P4s): authenticated idle WebSockets (Socket.IO sockets) of one gateway process, and
its RSS per connection.

The gateway runs on CPU 0 with a file-descriptor limit of 20,000 (raised in the child
only); the Node.js clients (CPU 1) open the sockets in waves, authenticate each with a
token of one of 1,000 users, and then stay idle (the gateway's pings keep them alive).
RSS per connection is the gateway's RSS growth from before the first socket to after
the last authenticated one, divided by the sockets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from bench.context import Context
from bench.node import clients_argv, ensure_node_modules
from bench.procs import (
    LOAD_CPU,
    NOFILE,
    SERVER_CPU,
    Children,
    free_port,
    python_argv,
    rss_kib,
    wait_http,
)
from bench.report import Result
from bench.stage import Stage, stage

USERS = 1000
SETTLE_SECONDS = 3.0


def _write_tokens(path: Path, st: Stage) -> Path:
    path.write_bytes(orjson.dumps([st.token(f"user{u:04d}") for u in range(USERS)]))
    return path


async def run(ctx: Context, *, socketio: bool = False) -> Result:
    """Measure P4 (`/ws`), or P4s (`/socket.io/`, websocket transport)."""
    ensure_node_modules()
    sockets = ctx.size(10_000, 2_000)
    async with stage(ctx.base, "p4") as st, Children(ctx.log_dir) as kids:
        port = free_port()
        gateway = await kids.start(
            "p4-gateway",
            python_argv("hub", "gateway"),
            env=st.env(HUB_GATEWAY_PORT=str(port)),
            cpu=SERVER_CPU,
            nofile=NOFILE,
        )
        health = f"http://127.0.0.1:{port}/health"
        await wait_http(health, gateway)
        await asyncio.sleep(SETTLE_SECONDS)
        before = rss_kib(gateway.pid)
        tokens = _write_tokens(ctx.log_dir / "p4-tokens.json", st)
        path = "/socket.io/?EIO=4&transport=websocket" if socketio else "/ws"
        clients = await kids.start(
            "p4-clients",
            clients_argv(
                f"ws://127.0.0.1:{port}{path}",
                sockets,
                proto="sio" if socketio else "hub",
                expect=0,
                timeout=600,
                tokens_file=tokens,
            ),
            cpu=LOAD_CPU,
            nofile=NOFILE,
            pipe=True,
        )
        ready = await clients.json_line("ready", timeout=ctx.size(300, 120))
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_kib(gateway.pid)
        async with httpx.AsyncClient(timeout=10) as http:
            ws = (await http.get(health)).json()["services"]["websocket"]
        held = min(int(ws["connections"]), int(ready["ready"]))
    return {
        "connections": held,
        "rss_per_conn_kib": round((after - before) / max(held, 1), 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "users": min(USERS, held),
        "authenticated_users": ws["authenticatedUsers"],
        "client_failures": ready.get("failed", 0),
    }
