"""Webhook throughput and latency of the connectors against a real Kafka and store.

    HUB_KAFKA_BOOTSTRAP=localhost:9092 HUB_MONGO_URL=mongodb://localhost:27017 \
        .venv/bin/python bench/connectors_webhooks.py [--requests 5000] [--concurrency 64]

Starts `hub connectors` (its own process, log level warning) on a free loopback port,
posts signed generic webhooks (distinct messages) over real HTTP with bounded
concurrency from this process, and prints requests/s and latency percentiles. Uses its
own topic namespace and database (dropped after). Every request must get 200 (acked by
Kafka), or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import aiohttp
import orjson

from connectors.signatures import hmac_sha256_hex
from hubcore.accounts import AccountStore
from hubcore.mongo import create_client, database
from hubcore.settings import load_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _healthy(http: aiohttp.ClientSession, base: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.1)):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/health") as answer:
                if answer.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the connectors did not become healthy within {timeout:g}s")


async def run(requests: int, concurrency: int) -> None:
    tag = uuid.uuid4().hex[:8]
    port = _free_port()
    settings = load_settings(
        mongo_db=f"bench_{tag}", topic_namespace=f"bench.{tag}", connectors_port=port
    )
    client = create_client(settings.mongo_url)
    account = await AccountStore(database(client, settings)).create(
        "bench-user", "generic", "bench", {"secret": "bench-secret"}
    )
    env = {
        **os.environ,
        "HUB_MONGO_DB": settings.mongo_db,
        "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
        "HUB_CONNECTORS_PORT": str(port),
        "HUB_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([sys.executable, "-m", "hub", "connectors"], env=env)  # noqa: ASYNC220
    latencies: list[float] = []
    try:
        base = f"http://127.0.0.1:{port}"
        # aiohttp: httpx's own overhead dominates at this concurrency.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as http:
            await _healthy(http, base)
            bodies = [
                orjson.dumps(
                    {
                        "conversationId": f"c{i % 100}",
                        "messageId": f"m{i}",
                        "sender": {"id": "s", "name": "Bench"},
                        "text": f"message {i}",
                        "sentAt": "2026-11-25T12:00:00Z",
                    }
                )
                for i in range(requests)
            ]
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)

            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    headers = {
                        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex("bench-secret", body)
                    }
                    started = time.perf_counter()
                    async with http.post(
                        f"{base}/webhooks/generic/{account.id}", data=body, headers=headers
                    ) as answer:
                        text = await answer.text()
                    latencies.append(time.perf_counter() - started)
                    if answer.status != 200:
                        raise RuntimeError(f"{answer.status}: {text}")

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(30)
        await client.drop_database(settings.mongo_db)
        await client.close()
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{requests} webhooks, concurrency {concurrency}: {requests / elapsed:.0f} req/s, "
        f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
