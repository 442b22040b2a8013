"""Open-loop end-to-end load (P3): webhooks at a fixed rate, their `new_message` frames timed.

One WebSocket per user is authenticated first; then webhook n is sent at `n / rate`
seconds whatever the answers do (open loop, so a slow hub cannot slow the load down),
and its latency is the time from its scheduled send to the arrival of the
`new_message` frame carrying its text. Sender and receiver share this process's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import orjson
import websockets

from bench.arrivals import Arrivals
from bench.data import signature_header, webhook_body
from bench.hops import HopProbe
from bench.stats import Latency

_TAG = "bench-e2e "  # text = tag + sequence number: how an arriving frame is matched
_DRAIN_SECONDS = 60.0  # after the last send, how long stragglers may take


async def _receive(ws_url: str, token: str, times: Arrivals, ready: asyncio.Event) -> None:
    async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
        await ws.send(orjson.dumps({"type": "authenticate", "token": token}).decode())
        answer = orjson.loads(await ws.recv())
        if answer.get("type") != "authenticated":
            raise RuntimeError(f"not authenticated: {answer}")
        ready.set()
        async for raw in ws:
            now = time.perf_counter()
            frame = orjson.loads(raw)
            if frame.get("type") == "new_message":
                text = str(frame["data"]["message"]["text"])
                if text.startswith(_TAG):
                    times.arrive(int(text.removeprefix(_TAG)), now)


async def run(
    connectors: str,
    ws_url: str,
    accounts: list[dict[str, str]],
    secret: str,
    rate: float,
    duration: float,
    warmup: float,
    *,
    run_id: str = "p3",
    hops: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send `rate` webhooks/s for `warmup + duration` s round-robin over `accounts`
    ({id, token}); latencies of the messages sent after `warmup`. With `hops`
    ({bootstrap, raw, events}: the stage's broker and topics) each latency is split
    into its hops (`bench/hops.py`)."""
    times = Arrivals(int(rate * (warmup + duration)))
    answered: list[float] = []
    errors: list[str] = []
    readies = [asyncio.Event() for _ in accounts]
    receivers = [
        asyncio.create_task(_receive(ws_url, a["token"], times, ready))
        for a, ready in zip(accounts, readies, strict=True)
    ]
    bodies = [webhook_body(run_id, n, text=f"{_TAG}{n}") for n in range(times.total)]
    timeout = aiohttp.ClientTimeout(total=30)
    probe = None if hops is None else HopProbe(hops["bootstrap"], hops["raw"], hops["events"], _TAG)
    try:
        if probe is not None:
            await probe.start()
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.wait() for r in readies))
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def post(n: int) -> None:
                account = accounts[n % len(accounts)]
                url = f"{connectors}/webhooks/generic/{account['id']}"
                try:
                    async with http.post(
                        url, data=bodies[n], headers=signature_header(secret, bodies[n])
                    ) as answer:
                        await answer.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # Past the knee the connectors stop answering in time: a lost message.
                    if len(errors) < 5:
                        errors.append(repr(exc))
                    return
                answered.append(time.perf_counter() - times.sent[n])
                if answer.status != 200 and len(errors) < 5:
                    errors.append(str(answer.status))

            posts = [asyncio.create_task(post(n)) async for n in times.paced(rate)]
            await asyncio.gather(*posts)
        await times.drain(_DRAIN_SECONDS)
    finally:
        if probe is not None:
            await probe.stop()
        for task in receivers:
            task.cancel()
        for task in receivers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    skip = int(rate * warmup)
    measured = times.latencies(skip)
    return {
        "rate": rate,
        "seconds": duration,
        "delivered": len(measured),
        "lost": times.total - skip - len(measured),
        **(Latency.of_seconds(measured).as_dict() if measured else {}),
        "webhook_answer": Latency.of_seconds(answered).as_dict() if answered else {},
        "errors": errors,
        **(
            {}
            if probe is None
            else {"hops": probe.split(times.sent, times.arrived, range(skip, times.total))}
        ),
    }
