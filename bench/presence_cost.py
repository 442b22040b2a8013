"""N2: the presence path's CPU per connection change (`hub bench --only N2`, or
`python -m bench.presence_cost` alone).

Three figures, in microseconds of CPU per connection change (a connect or a disconnect):

- `gateway_observe_us`: what the gateway's registry hook costs on the connection's path
  (building the `hub.presence` record and queueing it), in this process;
- `worker_logic_us`: the worker's pure batch logic (decode and apply), in this process;
- `worker_process_us`: a real `hub streams` worker's whole process (Faust's stream, the
  table and its changelog, the `presence_update` events, the store write) over a burst of
  `--users` connects then as many disconnects produced to `hub.presence`, from the first
  record to every user's document saying offline, minus the worker's idle CPU over as long.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.context import Context
from bench.procs import Children, cpu_seconds, free_port, python_argv, wait_log
from bench.report import Result
from bench.stage import stage
from gateway.connection import WsConnection
from gateway.presence import PresencePublisher
from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.mongo import PRESENCE, create_client, database
from hubcore.settings import Settings
from schemas.base import utc_now
from schemas.presence import PresenceRecord
from streams.batch.records import SourceRecord
from streams.presence import PresenceBatch, UserPresence, decode


def _records(users: int) -> list[PresenceRecord]:
    at = utc_now()
    out = []
    for kind in ("connect", "disconnect"):
        for n in range(users):
            out.append(
                PresenceRecord(
                    kind=kind,
                    gateway_id="bench-gw",
                    at=at + timedelta(milliseconds=n),
                    user_id=f"user{n}",
                    connection_id=f"conn_{n:016x}",
                    client_kind="ws",
                )
            )
    return out


def gateway_observe_us(changes: int) -> float:
    publisher = PresencePublisher(Settings(), lambda: None)
    conns = []
    for n in range(changes // 2):
        conn = WsConnection(None, 8)
        conn.bind(f"user{n}")
        conns.append(conn)
    started = time.process_time()
    for conn in conns:
        publisher.observe(conn, True)
    for conn in conns:
        publisher.observe(conn, False)
    return (time.process_time() - started) / changes * 1e6


def worker_logic_us(users: int, batch: int) -> float:
    values = [(r.user_id or "").encode() for r in _records(users)]
    raw = [r.to_json() for r in _records(users)]
    state: dict[str, UserPresence] = {}
    started = time.process_time()
    for first in range(0, len(raw), batch):
        chunk = [
            (n, decode(SourceRecord("hub.presence", 0, n, values[n], raw[n])))
            for n in range(first, min(first + batch, len(raw)))
        ]
        applied = PresenceBatch(
            load=lambda u: state.get(u) or UserPresence(),
            holders=lambda: [u for u, s in state.items() if s.online],
            gateways={},
            lease_ms=30_000,
            applied=first - 1,
        )
        applied.apply((n, r) for n, r in chunk if isinstance(r, PresenceRecord))
        for user_id in applied.changed:
            state[user_id] = applied.users[user_id]
            state[user_id].to_value()
            state[user_id].to_doc(user_id)
    return (time.process_time() - started) / len(raw) * 1e6


async def worker_process_us(
    base: Settings, log_dir: Path, users: int, idle_s: float
) -> dict[str, Any]:
    """The `hub streams` worker's CPU per change over a burst (`base`'s servers, a stage of
    its own; the worker's output in `log_dir`)."""
    async with stage(base, "presence") as st, Children(log_dir) as kids:
        await ensure_topics(st.settings)
        env = st.env(HUB_STREAMS_WEB_PORT=str(free_port()), HUB_DATA_DIR=str(log_dir / "n2-data"))
        worker = await kids.start("n2-streams", python_argv("hub", "streams"), env=env)
        await wait_log(worker, "Worker]: Ready", timeout=180)
        await asyncio.sleep(2)  # the group settles
        before = cpu_seconds(worker.pid)
        await asyncio.sleep(idle_s)
        idle_per_s = (cpu_seconds(worker.pid) - before) / idle_s
        topic = Topics.from_settings(st.settings).presence
        producer = create_producer(st.settings)
        mongo = create_client(st.settings.mongo_url)
        db = database(mongo, st.settings)
        await producer.start()
        try:
            started_wall, started_cpu = time.monotonic(), cpu_seconds(worker.pid)
            futures = [
                await producer.send(topic, key=(r.user_id or "").encode(), value=r.to_json())
                for r in _records(users)
            ]
            await asyncio.gather(*futures)
            while await db[PRESENCE].count_documents({"online": False}) < users:
                worker.check_alive()
                await asyncio.sleep(0.1)
            wall = time.monotonic() - started_wall
            cpu = cpu_seconds(worker.pid) - started_cpu - idle_per_s * wall
        finally:
            await producer.stop()
            await mongo.close()
        return {
            "worker_process_us": round(cpu / (2 * users) * 1e6, 1),
            "burst_wall_s": round(wall, 2),
            "idle_cpu_per_s": round(idle_per_s, 4),
        }


async def measure(
    base: Settings, log_dir: Path, users: int, idle_s: float, *, worker: bool = True
) -> dict[str, Any]:
    """Every figure over `2 * users` changes (`worker`: with the worker process's)."""
    result: dict[str, Any] = {
        "changes": 2 * users,
        "gateway_observe_us": round(gateway_observe_us(2 * users), 2),
        "worker_logic_us": round(worker_logic_us(users, 500), 2),
    }
    if worker:
        result.update(await worker_process_us(base, log_dir, users, idle_s))
    return result


async def run(ctx: Context) -> Result:
    """N2 of `hub bench`: µs of CPU per connection change in the gateway's hook
    (`gateway_observe_us`), the worker's batch logic and its whole process."""
    return await measure(ctx.base, ctx.log_dir, ctx.size(2000, 500), ctx.size(5.0, 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.presence_cost")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle baseline")
    parser.add_argument("--no-worker", action="store_true", help="the in-process figures only")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="presence-cost-"))
    try:
        result = asyncio.run(
            measure(Settings(), log_dir, args.users, args.idle, worker=not args.no_worker)
        )
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
