"""P1: signed webhooks/s that `hub connectors` accepts (200 after Kafka's ack) vs bare FastAPI.

Both servers run at once on CPU 0, each served by `uvicorn.run` with the same options;
the load generator (its own process, CPU 1) sends the same signed generic webhooks with
the same concurrency, unique message ids throughout (the connectors drop repeats at the
edge). Rounds alternate baseline and hub; the best round of each counts, which is the
least disturbed one on a shared machine. P8 reuses the bare side (`bare_cpu_us`) when P1
is not part of its run.
"""

from __future__ import annotations

import uuid
from typing import Any

from bench.context import Context
from bench.procs import (
    LOAD_CPU,
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
from bench.stage import WEBHOOK_SECRET, stage

CONCURRENCY = 64


def _sizes(ctx: Context) -> tuple[int, int, int]:
    """(requests, warm-up requests, rounds) of a run of this size."""
    return ctx.size(6000, 1500), ctx.size(500, 200), ctx.size(2, 1)


async def _start_bare(kids: Children, name: str) -> tuple[Child, int]:
    """The bare FastAPI baseline on CPU 0, answering; (its process, its port)."""
    port = free_port()
    bare = await kids.start(
        name, python_argv("bench.baseline_app", "--port", str(port)), cpu=SERVER_CPU
    )
    await wait_http(f"http://127.0.0.1:{port}/health", bare)
    return bare, port


async def _round(
    kids: Children, name: str, url: str, server: Child, requests: int, warmup: int
) -> dict[str, Any]:
    """One closed-loop round against `url`; the loadgen's result with `cpu_us` (the server's
    CPU per request, warm-up included: steadier than req/s when other work shares the
    machine)."""
    cpu = cpu_seconds(server.pid)
    out = await kids.run_json(
        name,
        python_argv(
            "bench.loadgen",
            "webhooks",
            "--url",
            url,
            "--secret",
            WEBHOOK_SECRET,
            "--run-id",
            uuid.uuid4().hex[:12],
            "--requests",
            str(requests),
            "--concurrency",
            str(CONCURRENCY),
            "--warmup",
            str(warmup),
        ),
        cpu=LOAD_CPU,
        timeout=300,
    )
    if out["errors"]:
        raise BenchError(f"{name} answered other than 200: {out['errors']}")
    out["cpu_us"] = round((cpu_seconds(server.pid) - cpu) / (requests + warmup) * 1e6, 1)
    return out


async def bare_cpu_us(ctx: Context, kids: Children, name: str) -> float:
    """P1's bare side alone: the bare route's least CPU per request over P1's rounds."""
    requests, warmup, rounds = _sizes(ctx)
    bare, port = await _start_bare(kids, name)
    try:
        url = f"http://127.0.0.1:{port}/webhooks/generic/bare"
        outs = [
            await _round(kids, f"{name}-load-{r}", url, bare, requests, warmup)
            for r in range(rounds)
        ]
    finally:
        await kids.stop(bare)
    return float(min(o["cpu_us"] for o in outs))


async def run(ctx: Context) -> Result:
    """Measure P1."""
    requests, warmup, rounds = _sizes(ctx)
    async with stage(ctx.base, "p1") as st, Children(ctx.log_dir) as kids:
        (account,) = await st.generic_accounts(["bench-user"])
        hub_port = free_port()
        hub = await kids.start(
            "p1-connectors",
            python_argv("hub", "connectors"),
            # At the default log level: one JSON line per webhook, as in production.
            env=st.env(HUB_CONNECTORS_PORT=str(hub_port), HUB_CONNECTORS_POLLERS="false"),
            cpu=SERVER_CPU,
        )
        bare, bare_port = await _start_bare(kids, "p1-bare-fastapi")
        await wait_http(f"http://127.0.0.1:{hub_port}/health", hub)
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "hub": []}
        for r in range(rounds):
            for name, port, server in (("bare", bare_port, bare), ("hub", hub_port, hub)):
                url = f"http://127.0.0.1:{port}/webhooks/generic/{account.id}"
                runs[name].append(
                    await _round(kids, f"p1-load-{name}-{r}", url, server, requests, warmup)
                )
    best = {name: max(outs, key=lambda o: o["per_s"]) for name, outs in runs.items()}
    return ratio_result(
        best["hub"]["per_s"],
        best["bare"]["per_s"],
        "req/s",
        baseline_name="bare FastAPI",
        p50_ms=best["hub"]["p50_ms"],
        p99_ms=best["hub"]["p99_ms"],
        baseline_p50_ms=best["bare"]["p50_ms"],
        baseline_p99_ms=best["bare"]["p99_ms"],
        concurrency=CONCURRENCY,
        requests=requests,
        rounds={name: [o["per_s"] for o in outs] for name, outs in runs.items()},
        cpu_us_per_request=min(o["cpu_us"] for o in runs["hub"]),
        baseline_cpu_us_per_request=min(o["cpu_us"] for o in runs["bare"]),
    )
