"""P5: frames/s one gateway pushes to 5,000 sockets in a burst, vs a Node.js Socket.IO server.

5,000 sockets of one user are opened by the same Node.js client program for both
servers (CPU 1, the servers on CPU 0, descriptor limits raised in the children); then
20 `new_message` events are sent - to the hub through its user-events topic, to Node's
`sio_server.js` by `POST /burst` with the same event as payload - and the rate is the
frames all sockets received over the time from that send to the last frame. P5 measures
the hub on `/ws`, P5s on `/socket.io/` (websocket transport, the same Node clients
speaking Socket.IO as they do to Node's server). Rounds alternate; the best of each counts.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from typing import Any

import httpx
import orjson

from bench.context import Context
from bench.data import new_message_event
from bench.node import clients_argv, ensure_node_modules, sio_server_argv
from bench.procs import (
    LOAD_CPU,
    NOFILE,
    SERVER_CPU,
    BenchError,
    Child,
    Children,
    cpu_seconds,
    free_port,
    python_argv,
    wait_http,
)
from bench.report import Result, ratio_result
from bench.stage import Stage, stage
from bench.stats import rate
from hubcore.kafka import Topics, create_producer

SOCKETS = 5000
EVENTS = 20
USER = "burst-user"
_SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


async def _clients(kids: Children, name: str, url: str, proto: str, token: str) -> Child:
    clients = await kids.start(
        name,
        # Held open after `done`: the server's CPU per frame is read then, and closing
        # 5,000 sockets costs it about 250 us each (P5s had a varying part of that).
        clients_argv(url, SOCKETS, proto=proto, expect=EVENTS, timeout=120, token=token, hold=True),
        cpu=LOAD_CPU,
        nofile=NOFILE,
        pipe=True,
    )
    await clients.json_line("ready", timeout=180)
    return clients


async def _finish(
    kids: Children, clients: Child, started_ms: float, server: Child, cpu: float
) -> dict[str, Any]:
    done = await clients.json_line("done", timeout=180)
    spent = cpu_seconds(server.pid) - cpu
    await kids.stop(clients)
    if done["frames"] != SOCKETS * EVENTS:
        raise BenchError(f"{clients.name}: {done['frames']} of {SOCKETS * EVENTS} frames")
    seconds = (done["lastAt"] - started_ms) / 1000
    return {
        "frames": done["frames"],
        "seconds": seconds,
        "per_s": rate(done["frames"], seconds),
        "cpu_us": round(spent / done["frames"] * 1e6, 2),
    }


async def _hub(kids: Children, st: Stage, name: str, proto: str) -> dict[str, Any]:
    port = free_port()
    gateway = await kids.start(
        name,
        python_argv("hub", "gateway"),
        env=st.env(HUB_GATEWAY_PORT=str(port)),
        cpu=SERVER_CPU,
        nofile=NOFILE,
    )
    await wait_http(f"http://127.0.0.1:{port}/health", gateway)
    path = "/ws" if proto == "hub" else _SIO_PATH
    producer = create_producer(st.settings)
    await producer.start()
    try:
        clients = await _clients(
            kids, f"{name}-clients", f"ws://127.0.0.1:{port}{path}", proto, st.token(USER)
        )
        values = [new_message_event(USER, n).to_json() for n in range(EVENTS)]
        topic = Topics.from_settings(st.settings).user_events
        cpu = cpu_seconds(gateway.pid)
        started = time.time() * 1000
        acks = [await producer.send(topic, key=USER.encode(), value=v) for v in values]
        await asyncio.gather(*acks)
        result = await _finish(kids, clients, started, gateway, cpu)
    finally:
        await producer.stop()
    await kids.stop(gateway)
    return result


async def _node(kids: Children, name: str) -> dict[str, Any]:
    port = free_port()
    server = await kids.start(
        name,
        sio_server_argv(),
        env={**os.environ, "PORT": str(port)},
        cpu=SERVER_CPU,
        nofile=NOFILE,
        pipe=True,
    )
    await server.json_line("listening", timeout=30)
    clients = await _clients(
        kids, f"{name}-clients", f"ws://127.0.0.1:{port}{_SIO_PATH}", "sio", "x"
    )
    event = orjson.loads(new_message_event(USER, 0).to_json())
    # The hub's /ws frame without its cursor: sio_server.js adds one per event.
    payload = {k: event[k] for k in ("type", "id", "occurredAt", "data")}
    query = urllib.parse.urlencode({"events": EVENTS, "payload": orjson.dumps(payload).decode()})
    async with httpx.AsyncClient(timeout=30) as http:
        cpu = cpu_seconds(server.pid)
        started = time.time() * 1000
        answer = await http.post(f"http://127.0.0.1:{port}/burst?{query}")
        answer.raise_for_status()
    result = await _finish(kids, clients, started, server, cpu)
    await kids.stop(server)
    return result


async def run(ctx: Context, *, ws: bool = True, socketio: bool = True) -> dict[str, Result]:
    """Measure P5 (`/ws`) and/or P5s (`/socket.io/`) against the same Node.js rounds."""
    ensure_node_modules()
    rounds = ctx.size(2, 1)
    protos = [p for p, on in (("hub", ws), ("sio", socketio)) if on]
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in [*protos, "node"]}
    async with stage(ctx.base, "p5") as st, Children(ctx.log_dir) as kids:
        for r in range(rounds):
            for proto in protos:
                runs[proto].append(await _hub(kids, st, f"p5-gateway-{proto}-{r}", proto))
            runs["node"].append(await _node(kids, f"p5-node-{r}"))
    frame = new_message_event(USER, 0).to_json()
    ids = {"hub": "P5", "sio": "P5s"}
    return {ids[proto]: burst_result(runs[proto], runs["node"], len(frame)) for proto in protos}


def burst_result(hub: list[dict[str, Any]], node: list[dict[str, Any]], event_bytes: int) -> Result:
    """Best round of the hub against best round of Node, with CPU per frame as detail."""
    best_hub = max(hub, key=lambda o: o["per_s"])
    best_node = max(node, key=lambda o: o["per_s"])
    return ratio_result(
        best_hub["per_s"],
        best_node["per_s"],
        "frames/s",
        baseline_name="Node.js socket.io",
        sockets=SOCKETS,
        events=EVENTS,
        event_bytes=event_bytes,
        hub_seconds=round(best_hub["seconds"], 3),
        baseline_seconds=round(best_node["seconds"], 3),
        # Server CPU per frame in the burst (the gateway's includes its Kafka consumer).
        cpu_us_per_frame=min(o["cpu_us"] for o in hub),
        baseline_cpu_us_per_frame=min(o["cpu_us"] for o in node),
        rounds={"hub": [round(o["per_s"]) for o in hub], "node": [round(o["per_s"]) for o in node]},
    )
