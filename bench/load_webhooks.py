"""Closed-loop webhook load (P1): N signed requests at fixed concurrency, latency per request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.data import signature_header, webhook_body
from bench.stats import Latency, rate


async def _post_all(
    http: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[bytes, dict[str, str]]],
    concurrency: int,
    latencies: list[float],
    errors: list[str],
) -> None:
    todo = iter(requests)

    async def worker() -> None:
        for body, headers in todo:  # one shared iterator: each request is sent once
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as answer:
                text = await answer.read()
            latencies.append(time.perf_counter() - started)
            if answer.status != 200 and len(errors) < 5:
                errors.append(f"{answer.status}: {text[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run(
    url: str, secret: str, run_id: str, requests: int, concurrency: int, warmup: int
) -> dict[str, Any]:
    """Send `warmup` then `requests` distinct signed generic webhooks to `url`.

    Bodies and signatures are made before the clock starts; every request must get 200.
    aiohttp rather than httpx: httpx's own overhead dominates at this concurrency.
    """
    made = []
    for n in range(warmup + requests):
        body = webhook_body(run_id, n)
        made.append((body, signature_header(secret, body)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    errors: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await _post_all(http, url, made[:warmup], concurrency, [], errors)
        started = time.perf_counter()
        await _post_all(http, url, made[warmup:], concurrency, latencies, errors)
        elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "per_s": round(rate(requests, elapsed), 1),
        **Latency.of_seconds(latencies).as_dict(),
        "errors": errors,
    }
