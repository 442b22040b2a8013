"""P3: webhook -> WebSocket frame latency at 10, 200 and 1,000 msg/s through the whole hub,
vs Kafka's hop, and the projection sink's lag.

Connectors, one streams worker and a gateway run as the hub runs (separate processes,
not pinned: at this load latency, not throughput, is measured, and one core for three
processes would only add queueing). The load generator holds one WebSocket per user
and sends signed webhooks at a fixed rate (open loop) round-robin over 20 users; each
message's latency is from just before its POST to the arrival of its `new_message`
frame. The first seconds warm up and are not counted. The rates run one after the other
against the same processes (each with its own message ids); 200 msg/s is the headline.
The sink's lag is the p99 of the worker's `hub_streams_sink_lag_seconds` histogram over
each rate's run (a bucket's upper bound). The baseline is the round trip of a record of
the same size produced and consumed through the same broker with the hub's producer
settings, at 200 msg/s. Each rate also gives, per server process, its share of one core
and how long it was ready to run but waited for a core (`cpu_wait_share`, from the
kernel's scheduler statistics): on a machine whose cores are all busy, that wait is part
of every hop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.context import Context
from bench.media_mix import media_accounts, media_figures
from bench.procs import (
    BenchError,
    Child,
    Children,
    free_port,
    histogram,
    python_argv,
    sched_seconds,
    wait_http,
    wait_log,
)
from bench.report import Result
from bench.stage import WEBHOOK_SECRET, Stage, stage
from bench.stats import histogram_quantile
from hubcore.kafka import Topics, ensure_topics

RATE = 200.0
RATES = (10.0, RATE, 1000.0)
USERS = 20
SINK_LAG = "hub_streams_sink_lag_seconds"


def _write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(spec))
    return path


@dataclass(frozen=True, slots=True)
class RunningHub:
    """Connectors, one streams worker and a gateway of a stage, and the load spec for them."""

    spec: Path
    metrics_url: str
    servers: tuple[Child, ...]


@contextlib.asynccontextmanager
async def running_hub(
    ctx: Context, st: Stage, kids: Children, name: str, *, hops: bool = False, media: bool = False
) -> AsyncIterator[RunningHub]:
    """Start the three servers as the hub runs them (unpinned); stop them at the end.
    With `hops` the load generator also splits each latency into its hops (a probe
    consumer of its own: P3's light loads, not P7's ramp). With `media` one webhook in
    ten carries a file (P3m, P7m: `bench/media_mix.py`), served by a file stand-in child
    the connectors' media fetcher fetches from."""
    users = [f"user{i:02d}" for i in range(USERS)]
    topics = Topics.from_settings(st.settings)
    accounts = await st.generic_accounts(users)
    media_spec: dict[str, Any] | None = None
    platform_bases: dict[str, str] = {}
    if media:
        files_port = free_port()
        files = await kids.start(
            f"{name}-files", python_argv("bench.media_mix", "--port", str(files_port))
        )
        files_url = f"http://127.0.0.1:{files_port}"
        await wait_http(f"{files_url}/health", files)
        media_spec = {"accounts": await media_accounts(st.settings, users), "files": files_url}
        platform_bases = {
            "HUB_TELEGRAM_API_BASE": f"{files_url}/telegram",
            "HUB_WHATSAPP_API_BASE": f"{files_url}/whatsapp",
        }
    gw_port, conn_port, web_port = free_port(), free_port(), free_port()
    streams = await kids.start(
        f"{name}-streams",
        python_argv("hub", "streams"),
        env=st.env(
            HUB_STREAMS_WEB_PORT=str(web_port),
            HUB_DATA_DIR=str(ctx.log_dir / f"{name}-data"),
        ),
    )
    gateway = await kids.start(
        f"{name}-gateway",
        python_argv("hub", "gateway"),
        env=st.env(HUB_GATEWAY_PORT=str(gw_port)),
    )
    connectors = await kids.start(
        f"{name}-connectors",
        python_argv("hub", "connectors"),
        env=st.env(
            HUB_CONNECTORS_PORT=str(conn_port), HUB_CONNECTORS_POLLERS="false", **platform_bases
        ),
    )
    await wait_log(streams, "Worker]: Ready", timeout=120)
    await wait_http(f"http://127.0.0.1:{gw_port}/health", gateway)
    await wait_http(f"http://127.0.0.1:{conn_port}/health", connectors)
    spec = _write_spec(
        ctx.log_dir / f"{name}-spec.json",
        {
            "connectors": f"http://127.0.0.1:{conn_port}",
            "ws_url": f"ws://127.0.0.1:{gw_port}/ws",
            "secret": WEBHOOK_SECRET,
            "accounts": [{"id": a.id, "token": st.token(a.user_id)} for a in accounts],
            "hops": {
                "bootstrap": st.settings.kafka_bootstrap,
                "raw": topics.raw_messages,
                "events": topics.user_events,
            }
            if hops
            else None,
            "media": media_spec,
        },
    )
    try:
        yield RunningHub(
            spec, f"http://127.0.0.1:{web_port}/metrics", (streams, gateway, connectors)
        )
    finally:
        for child in (connectors, gateway, streams):
            await kids.stop(child)


async def open_loop(
    kids: Children, hub: RunningHub, name: str, rate: float, duration: float, warmup: float
) -> dict[str, Any]:
    """One open-loop run of webhooks at `rate` (its own message ids); the loadgen's result
    with the sink's lag p99 (ms) over the run added, and per server process its CPU
    seconds, share of one core and share of the run it waited for a core."""
    lag_before = await histogram(hub.metrics_url, SINK_LAG)
    sched_before = {c.name: sched_seconds(c.pid) for c in hub.servers}
    started = time.monotonic()
    e2e = await kids.run_json(
        f"{name}-load-{rate:g}",
        python_argv(
            "bench.loadgen",
            "e2e",
            "--spec",
            str(hub.spec),
            "--run-id",
            f"{name}r{rate:g}",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--warmup",
            str(warmup),
        ),
        timeout=duration + warmup + 120,
    )
    wall = time.monotonic() - started
    sched = {c.name: sched_seconds(c.pid) for c in hub.servers}
    ran = {n: sched[n][0] - sched_before[n][0] for n in sched}
    e2e["cpu_seconds"] = ran
    e2e["core_share"] = {n: round(s / wall, 2) for n, s in ran.items()}
    e2e["cpu_wait_share"] = {n: round((sched[n][1] - sched_before[n][1]) / wall, 2) for n in sched}
    lag = histogram_quantile(lag_before, await histogram(hub.metrics_url, SINK_LAG), 0.99)
    e2e["sink_lag_p99_ms"] = None if lag is None else round(lag * 1000, 1)
    return e2e


def _row(e2e: dict[str, Any]) -> dict[str, Any]:
    if "error" in e2e:
        return {"error": e2e["error"]}
    keys: tuple[str, ...] = ("p50_ms", "p99_ms", "max_ms", "sink_lag_p99_ms", "lost", "errors")
    keys += ("hops", "core_share", "cpu_wait_share")
    keys += ("text", "media", "media_settled", "media_unsettled", "media_failed")
    return {"messages": e2e["delivered"], **{k: e2e[k] for k in keys if k in e2e}}


async def _by_rate(ctx: Context, kids: Children, hub: RunningHub, name: str) -> dict[float, Any]:
    """An open loop at each of `RATES` (only the headline's failure ends the scenario)."""
    by_rate: dict[float, Any] = {}
    for rate in RATES:
        duration = ctx.size(60.0, 10.0) if rate == RATE else ctx.size(30.0, 6.0)
        try:
            by_rate[rate] = await open_loop(kids, hub, name, rate, duration, ctx.size(5.0, 2.0))
        except BenchError as exc:
            if rate == RATE:
                raise
            by_rate[rate] = {"error": str(exc)[:300]}
    return by_rate


async def run_media(ctx: Context, p3: Mapping[str, Any] | None) -> Result:
    """Measure P3m: P3's rates with one webhook in ten carrying a file; the text
    messages' p99 over plain P3's of this invocation (`p3`, if it ran) as `ratio`."""
    async with (
        stage(ctx.base, "p3m") as st,
        Children(ctx.log_dir) as kids,
        running_hub(ctx, st, kids, "p3m", hops=True, media=True) as hub,
    ):
        by_rate = await _by_rate(ctx, kids, hub, "p3m")
    delivered = _delivered(by_rate)  # first: it checks that every message arrived
    return {**media_figures(by_rate[RATE], p3), **delivered}


async def run(ctx: Context) -> Result:
    """Measure P3."""
    warmup = ctx.size(5.0, 2.0)
    async with stage(ctx.base, "p3") as st, Children(ctx.log_dir) as kids:
        rtt_topic = f"{st.settings.topic_namespace}.rtt"
        await ensure_topics(st.settings, {rtt_topic: {}})
        async with running_hub(ctx, st, kids, "p3", hops=True) as hub:
            by_rate = await _by_rate(ctx, kids, hub, "p3")
        rtt = await kids.run_json(
            "p3-kafka-rtt",
            python_argv(
                "bench.loadgen",
                "kafka-rtt",
                "--bootstrap",
                st.settings.kafka_bootstrap,
                "--topic",
                rtt_topic,
                "--rate",
                str(RATE),
                "--duration",
                str(ctx.size(20.0, 5.0)),
                "--warmup",
                str(warmup),
            ),
            timeout=180,
        )
    delivered = _delivered(by_rate)
    e2e = by_rate[RATE]
    return {
        "p50_ms": e2e["p50_ms"],
        "p99_ms": e2e["p99_ms"],
        "baseline_p99_ms": rtt["p99_ms"],
        "max_ms": e2e["max_ms"],
        "baseline_p50_ms": rtt["p50_ms"],
        **delivered,
        "webhook_answer_p50_ms": e2e["webhook_answer"]["p50_ms"],
        "webhook_answer_p99_ms": e2e["webhook_answer"]["p99_ms"],
    }


def _delivered(by_rate: dict[float, Any]) -> dict[str, Any]:
    """The figures P3 and P3m share, once every message of the measured rate arrived."""
    e2e = by_rate[RATE]
    if e2e["lost"] or e2e["errors"]:
        raise BenchError(f"{e2e['lost']} messages never arrived; errors {e2e['errors']}")
    return {
        "sink_lag_p99_ms": e2e["sink_lag_p99_ms"],
        "messages": e2e["delivered"],
        "rate": RATE,
        "rates": {f"{rate:g}": _row(result) for rate, result in by_rate.items()},
        "seconds": e2e["seconds"],
        "users": USERS,
    }
