"""R1: Socket.IO connection state recovery from Kafka: a client misses 1,000 events.

One `hub gateway` (CPU 0) and the seed's socket.io-client code (`bench/node/sio_recover.js`,
CPU 1, default transports, upgraded to WebSocket). The client sees one event, its TCP
connection is destroyed, 1,000 events of its user are produced, then it reconnects: the
figure is the time from `socket.connect()` to the 1,000th missed event (replayed from
`hub.user-events`), with `socket.recovered`, the order, and no duplicates a second later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Context
from bench.data import new_message_event
from bench.node import NODE_DIR, ensure_node_modules
from bench.procs import (
    LOAD_CPU,
    SERVER_CPU,
    BenchError,
    Child,
    Children,
    free_port,
    python_argv,
    wait_http,
)
from bench.report import Result
from bench.stage import stage
from hubcore.kafka import Topics, create_producer

MISSED = 1000
USER = "recover-user"


async def _say(client: Child, line: str) -> None:
    assert client.process.stdin is not None
    client.process.stdin.write(line.encode() + b"\n")
    await client.process.stdin.drain()


async def run(ctx: Context) -> Result:
    """Measure R1."""
    ensure_node_modules()
    async with stage(ctx.base, "r1") as st, Children(ctx.log_dir) as kids:
        port = free_port()
        gateway = await kids.start(
            "r1-gateway",
            python_argv("hub", "gateway"),
            env=st.env(HUB_GATEWAY_PORT=str(port)),
            cpu=SERVER_CPU,
        )
        await wait_http(f"http://127.0.0.1:{port}/health", gateway)
        argv = ["node", str(NODE_DIR / "sio_recover.js"), "--url", f"http://127.0.0.1:{port}"]
        client = await kids.start(
            "r1-client", [*argv, "--token", st.token(USER)], cpu=LOAD_CPU, pipe=True
        )
        await client.json_line("ready", timeout=30)
        producer = create_producer(st.settings)
        await producer.start()
        topic = Topics.from_settings(st.settings).user_events
        try:

            async def produce(first: int, count: int) -> None:
                values = [new_message_event(USER, n).to_json() for n in range(first, first + count)]
                acks = [await producer.send(topic, key=USER.encode(), value=v) for v in values]
                await asyncio.gather(*acks)

            await produce(0, 1)
            await client.json_line("got", timeout=30)
            await _say(client, "drop")
            await client.json_line("dropped", timeout=30)
            await produce(1, MISSED)
        finally:
            await producer.stop()
        await _say(client, f"reconnect {MISSED}")
        done: dict[str, Any] = await client.json_line("done", timeout=120)
        settled = await client.json_line("settled", timeout=10)
    if not done["recovered"]:
        raise BenchError("the client was not recovered")
    return {
        "ms": round(done["ms"], 1),
        "events": settled["settled"],
        "recovered": bool(done["recovered"]),
        "in_order": bool(done["ordered"]),
    }
