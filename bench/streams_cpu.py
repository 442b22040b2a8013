"""`python -m bench.streams_cpu`: one `hub streams` worker's CPU per message under an open
loop of raw messages, its raw -> event hop and its projection sink's lag.

Raw messages (20 users, a few chats each, as the connectors would produce them) go
straight to `raw-messages` at each fixed rate after a warm-up; the worker's CPU (user +
system, all threads, /proc) over each step ÷ the records it processed meanwhile is the
cost per message (the CPU figure to compare: on a busy machine latency swings far more).
A probe (`bench.hops`) gives each message's raw -> event hop: the raw record's produce
to its first event's (broker timestamps). The sink's lag is the p99 of the worker's
`hub_streams_sink_lag_seconds` over the step (a bucket's upper bound); the worker's
`projections` log lines (`--keep-logs`) have each write's own. `--src DIR` runs the
worker from another checkout (A/B in one sitting: alternate the two); `--profile DIR`
records each step with py-spy (`pip install py-spy`; `--spy-args`, default `--gil`:
the Python time) as raw collapsed stacks into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.data import raw_message
from bench.hops import HopProbe
from bench.procs import (
    Children,
    free_port,
    histogram,
    metric,
    python_argv,
    wait_log,
)
from bench.stage import stage
from bench.stats import Latency, histogram_quantile
from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.settings import Settings

USERS = 20
CONVERSATIONS = 5
SINK_LAG = "hub_streams_sink_lag_seconds"
RAW = 'hub_streams_records_total{kind="raw"}'
BATCHES = "hub_streams_batch_size_count"
TAG = "order #"  # bench.data.TEXT: the message number follows


def _user_system(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def _step(
    url: str,
    pid: int,
    producer: Any,
    topic: str,
    probe: HopProbe,
    rate: float,
    seconds: float,
    warmup: float,
    first_n: int,
    profile: Path | None,
    spy_args: list[str],
) -> dict[str, Any]:
    total = int(rate * (warmup + seconds))
    skip = int(rate * warmup)
    values = [raw_message(first_n + i, USERS, CONVERSATIONS) for i in range(total)]
    encoded = [(v.user_id.encode(), v.to_json()) for v in values]
    spy: asyncio.subprocess.Process | None = None
    before: tuple[float, tuple[float, float], float, dict[float, float]] | None = None
    began = time.perf_counter()
    acks = []
    for i in range(total):
        if i == skip:
            before = (
                time.monotonic(),
                _user_system(pid),
                await metric(url, RAW),
                await histogram(url, SINK_LAG),
            )
            batches = await metric(url, BATCHES)
            if profile is not None:
                spy = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    *spy_args,
                    "--threads",
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--duration",
                    str(int(seconds)),
                    "--nonblocking",
                    "--output",
                    str(profile / f"streams-{rate:g}.txt"),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key, value = encoded[i]
        acks.append(await producer.send(topic, key=key, value=value))
    await asyncio.gather(*acks)
    produced = time.monotonic()
    assert before is not None
    # Until every sent record is processed (at most 30 s more).
    want = before[2] + (total - skip)
    deadline = time.monotonic() + 30
    while await metric(url, RAW) < want and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    after = (time.monotonic(), _user_system(pid), await metric(url, RAW))
    batches = await metric(url, BATCHES) - batches
    lag = histogram_quantile(before[3], await histogram(url, SINK_LAG), 0.99)
    if spy is not None:
        await spy.wait()
    await asyncio.sleep(0.5)  # the probe's last events
    measured = range(first_n + skip, first_n + total)
    hops = [probe.event[n] - probe.raw[n] for n in measured if n in probe.event and n in probe.raw]
    records = max(after[2] - before[2], 1)
    user, system = (after[1][i] - before[1][i] for i in (0, 1))
    return {
        "rate": rate,
        "records": int(records),
        "cpu_us_per_msg": round((user + system) / records * 1e6),
        "user_system_us_per_msg": [round(user / records * 1e6), round(system / records * 1e6)],
        "core_share": round((user + system) / (after[0] - before[0]), 3),
        # CPU per message falls as batches grow (a starved worker batches more).
        "records_per_batch": round(records / max(batches, 1), 2),
        # From the last record's ack to every record processed: the backlog's drain.
        "drain_s": round(after[0] - produced, 2),
        "sink_lag_p99_ms": None if lag is None else round(lag * 1000),
        "hop": Latency.of_seconds(hops).as_dict() if hops else None,
        "lost": total - skip - len(hops),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = Settings()
    log_dir = Path(tempfile.mkdtemp(prefix="streams-cpu-"))
    results = []
    async with stage(base, "cpu") as st, Children(log_dir) as kids:
        await ensure_topics(st.settings)
        topics = Topics.from_settings(st.settings)
        web = free_port()
        env = st.env(HUB_STREAMS_WEB_PORT=str(web), HUB_DATA_DIR=str(log_dir / "data"))
        if args.src:
            env["PYTHONPATH"] = args.src
        # -P: `python -m` would put the cwd (this checkout) before PYTHONPATH.
        argv = (
            [sys.executable, "-P", "-m", "hub", "streams"]
            if args.src
            else python_argv("hub", "streams")
        )
        worker = await kids.start("streams", argv, env=env)
        await wait_log(worker, "Worker]: Ready", timeout=180)
        url = f"http://127.0.0.1:{web}/metrics"
        producer = create_producer(st.settings)
        probe = HopProbe(st.settings.kafka_bootstrap, topics.raw_messages, topics.user_events, TAG)
        await producer.start()
        await probe.start()
        try:
            first = 0
            for rate in args.rates:
                profile = Path(args.profile) if args.profile else None
                if profile is not None:
                    profile.mkdir(parents=True, exist_ok=True)
                result = await _step(
                    url,
                    worker.pid,
                    producer,
                    topics.raw_messages,
                    probe,
                    rate,
                    args.seconds,
                    args.warmup,
                    first,
                    profile,
                    args.spy_args.split(),
                )
                first += int(rate * (args.seconds + args.warmup)) + 1
                result["src"] = args.src or "."
                result["at"] = datetime.now(UTC).strftime("%H:%M:%S")
                sys.stdout.write(orjson.dumps(result).decode() + "\n")
                sys.stdout.flush()
                results.append(result)
        finally:
            await probe.stop()
            await producer.stop()
            await kids.stop(worker)
    if not args.keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        sys.stderr.write(f"logs in {log_dir}\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streams_cpu")
    parser.add_argument(
        "--rates", type=lambda s: [float(r) for r in s.split(",")], default=[100.0, 500.0]
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--src", help="run the worker from this checkout")
    parser.add_argument("--profile", help="py-spy each step into this directory")
    parser.add_argument("--spy-args", default="--gil", help="py-spy record's extra options")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.src:
        args.src = str(Path(args.src).resolve())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
