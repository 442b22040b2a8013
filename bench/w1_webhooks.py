"""W1: user event -> webhook delivery latency at 200 events/s, and deliveries/s to a fast
receiver (issue 26, docs/webhooks.md).

`hub connectors` (delivering only: no pollers, no reply senders) runs as the hub runs it;
a receiver (uvicorn, answering 204 at once) runs in the benchmark's process with 20
endpoints of 20 users. Events go straight onto `hub.user-events` (the streams workers'
output: their own cost is P2's and P3's). Latency is from an event's `occurredAt` to the
receiver reading its request; the first seconds warm up. Then a burst of events is put on
the topic at once and the rate at which they arrive is the deliveries/s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.context import Context
from bench.kit import receiving, user_event
from bench.procs import BenchError, Children, free_port, python_argv, wait_http
from bench.report import Result
from bench.stats import Latency, rate
from hub.demo.serving import serving_app
from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.webhooks import WebhookStore
from schemas import NewMessage

RATE = 200.0
USERS = 20


def _event(user: str, n: int) -> NewMessage:
    return user_event(user, n, conversation=f"conv_{user}_{n % 5}", text=f"event {n}")


class _Receiver:
    """Records when each event id arrived (epoch seconds)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.requests = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests += 1
        self.arrived.setdefault(orjson.loads(body)["id"], time.time())
        return Response(status_code=204)


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"W1: {what} not within {timeout:g} s")
        await asyncio.sleep(0.05)


async def run(ctx: Context) -> Result:
    """Measure W1."""
    duration, warmup = ctx.size(30.0, 8.0), ctx.size(5.0, 2.0)
    burst = int(ctx.size(5000, 1000))
    receiver = _Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    async with (
        receiving(ctx.base, "w1", USERS) as kit,
        Children(ctx.log_dir) as kids,
        serving_app(app, "the W1 receiver") as url,
    ):
        settings, users = kit.settings, kit.users
        await ensure_topics(settings)
        producer = create_producer(settings)
        port = free_port()
        connectors = await kids.start(
            "w1-connectors",
            python_argv("hub", "connectors"),
            env=kit.env(
                HUB_CONNECTORS_PORT=str(port),
                HUB_CONNECTORS_POLLERS="false",
                HUB_CONNECTORS_OUTBOUND="false",
            ),
        )
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", connectors)
            await producer.start()
            store = WebhookStore(kit.db, settings)
            for user in users:
                await store.create(user, f"{url}/{user}", ["new_message"], "bench")
            topic = Topics.from_settings(settings).user_events

            async def put(events: list[NewMessage]) -> None:
                sends = [
                    await producer.send(topic, key=e.user_id.encode(), value=e.to_json())
                    for e in events
                ]
                await asyncio.gather(*sends)

            # One event per endpoint first: the group has its partitions and every
            # endpoint its connection when the measured run starts.
            await put([_event(user, -1) for user in users])
            await _until(lambda: len(receiver.arrived) >= USERS, 120, "the first deliveries")
            sent: dict[str, float] = {}
            total = int(RATE * (duration + warmup))
            started = time.monotonic()
            for n in range(total):
                event = _event(users[n % USERS], n)
                if n >= RATE * warmup:
                    sent[event.id] = event.occurred_at.timestamp()
                await put([event])
                pause = started + (n + 1) / RATE - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            await _until(lambda: sent.keys() <= receiver.arrived.keys(), 300, "the run")
            latency = Latency.of_seconds([receiver.arrived[k] - at for k, at in sent.items()])
            before = len(receiver.arrived)
            t0 = time.monotonic()
            await put([_event(users[n % USERS], 1_000_000 + n) for n in range(burst)])
            await _until(lambda: len(receiver.arrived) >= before + burst, 600, "the burst")
            burst_seconds = time.monotonic() - t0
        finally:
            await producer.stop()
            await kids.stop(connectors)
    return {
        "p50_ms": latency.p50_ms,
        "p99_ms": latency.p99_ms,
        "max_ms": latency.max_ms,
        "deliveries_per_s": round(rate(burst, burst_seconds), 1),
        "rate": RATE,
        "events": len(sent),
        "endpoints": USERS,
        "burst": burst,
        "requests": receiver.requests,
    }
