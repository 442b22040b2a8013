"""Push throughput of one `hub gateway` process: sockets x events, frames per second.

Starts `hub gateway` pinned to CPU 0 (when there are two), opens USERS x SOCKETS
WebSockets from this process (pinned to CPU 1), produces EVENTS user events per user and
counts frames until every socket has all of its events. Uses the servers named by
HUB_KAFKA_BOOTSTRAP and HUB_MONGO_URL, with a fresh topic namespace and database.
BENCH_PROFILE=out.svg also records the server with py-spy (`pip install py-spy`).

    .venv/bin/python bench/gateway_push.py --users 100 --sockets 50 --events 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procs import cpu_seconds
from bench.stage import BENCH_RATES
from hub.tokens import mint_token
from hubcore.kafka import Topics, create_producer
from hubcore.sealing import new_key
from hubcore.settings import Settings
from tests.integration.gateway_kit import gateway_env, new_message
from tests.local_servers import free_port

SECRET = "bench-secret-" + "b" * 40


@dataclass
class Result:
    frames: int
    sockets: int
    elapsed: float
    produced: float
    server_cpu: float
    client_cpu: float
    metrics: str

    def report(self) -> str:
        def metric(name: str) -> float:
            match = re.search(rf"^{name} (\S+)$", self.metrics, re.MULTILINE)
            return float(match[1]) if match else float("nan")

        latency = metric("hub_gateway_push_latency_seconds_sum") / metric(
            "hub_gateway_push_latency_seconds_count"
        )
        return (
            f"{self.frames} frames to {self.sockets} sockets in {self.elapsed:.2f} s = "
            f"{self.frames / self.elapsed:,.0f} frames/s (producing took {self.produced:.2f} s); "
            f"mean push latency {latency * 1000:.0f} ms; server CPU "
            f"{self.server_cpu / self.frames * 1e6:.1f} us/frame "
            f"({self.server_cpu / self.elapsed:.0%} busy), "
            f"client {self.client_cpu / self.elapsed:.0%} busy"
        )


async def _client(url: str, token: str, expected: int, done: asyncio.Queue[float]) -> None:
    async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
        await ws.send(orjson.dumps({"type": "authenticate", "token": token}).decode())
        await ws.recv()
        await done.put(0.0)  # authenticated
        for _ in range(expected):
            await ws.recv()
        await done.put(time.perf_counter())


async def _run(
    settings: Settings, port: int, pid: int, users: int, sockets: int, events: int
) -> Result:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(120):
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
        else:
            raise SystemExit("gateway did not become healthy")
        done: asyncio.Queue[float] = asyncio.Queue()
        url = f"ws://127.0.0.1:{port}/ws"
        tasks = [
            asyncio.create_task(_client(url, mint_token(settings, f"user{u}"), events, done))
            for u in range(users)
            for _ in range(sockets)
        ]
        for _ in tasks:
            await done.get()
        print(f"{len(tasks)} sockets authenticated; producing {users * events} events")
        producer = create_producer(settings)
        await producer.start()
        topic = Topics.from_settings(settings).user_events
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        started = time.perf_counter()
        pending = [
            await producer.send(
                topic, key=f"user{u}".encode(), value=new_message(f"user{u}", n).to_json()
            )
            for n in range(events)
            for u in range(users)
        ]
        await asyncio.gather(*pending)
        produced = time.perf_counter() - started
        finished = [await done.get() for _ in tasks]
        elapsed = max(finished) - started
        server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
        await producer.stop()
        await asyncio.gather(*tasks)
        metrics = (await http.get("/metrics")).text
    return Result(
        len(tasks) * events, len(tasks), elapsed, produced, server_cpu, client_cpu, metrics
    )


def main(users: int, sockets: int, events: int) -> None:
    settings = Settings(
        kafka_bootstrap=os.environ.get("HUB_KAFKA_BOOTSTRAP", "localhost:9092"),
        mongo_url=os.environ.get("HUB_MONGO_URL", "mongodb://localhost:27017"),
        mongo_db="bench_" + uuid.uuid4().hex[:8],
        topic_namespace="bench." + uuid.uuid4().hex[:8],
        topic_partitions=6,
        jwt_secret=SECRET,
        development=True,
        credentials_key=new_key(),
        _env_file=None,
        **BENCH_RATES,
    )
    port = free_port()
    queue = str(max(1024, events * 2))
    env = gateway_env(settings, port, HUB_WS_SEND_QUEUE=queue, HUB_LOG_LEVEL="warning")
    argv = [str(Path(sys.executable).with_name("hub")), "gateway"]
    if (os.cpu_count() or 1) >= 2:
        argv = ["taskset", "-c", "0", *argv]
        os.sched_setaffinity(0, {1})
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    profiler = None
    if os.environ.get("BENCH_PROFILE"):
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        out = os.environ["BENCH_PROFILE"]
        profiler = subprocess.Popen([py_spy, "record", "-p", str(server.pid), "-o", out])
    try:
        print(asyncio.run(_run(settings, port, server.pid, users, sockets, events)).report())
    finally:
        server.terminate()
        server.wait(timeout=20)
        if profiler is not None:
            profiler.wait(timeout=60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--sockets", type=int, default=50, help="sockets per user")
    parser.add_argument("--events", type=int, default=20, help="events per user")
    args = parser.parse_args()
    main(args.users, args.sockets, args.events)
