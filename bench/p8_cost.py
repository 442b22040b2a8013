"""P8: CPU per message of each hub process at fixed open-loop rates, against a bare request.

The same servers as P3 and P7 (connectors, one streams worker, a gateway, unpinned, one
WebSocket per user attached), then open loops at 100 and 500 webhooks/s, each for a fixed
time after its warm-up. Per process, the CPU it used during the run (the kernel's
scheduler statistics, as in P7) divided by the messages sent; their sum; and the sum
divided by the bare FastAPI route's CPU per request: P1's baseline when P1 ran in the same
invocation, else measured here first in the same way (pinned, closed loop, P1's sizes),
so the ratio always compares figures of one run. 500 msg/s is the headline (a busy
deployment's cost per message), 100 msg/s beside it (light load: a batch's fixed cost is
paid by few messages).

With `--profile`, each rate is then run once more with py-spy sampling the three servers
(`bench/profile.py`): a profiled run is slower than a plain one, so it is never the
measured one. P8's rates rather than P3's latency run: a CPU profile explains CPU per
message (a wait for a core or the broker leaves no sample), and at these two rates it
shows both the heavy-load cost per message and the light-load cost per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bench.context import Context
from bench.p1_webhooks import bare_cpu_us
from bench.p3_latency import RunningHub, open_loop, running_hub
from bench.p7_ramp import cpu_us_per_message
from bench.procs import Children
from bench.profile import RATE_HZ, Profiles
from bench.report import Result
from bench.stage import stage
from bench.stats import ratio

RATES = (100.0, 500.0)
HEADLINE = 500.0


def cost_row(used: Mapping[str, float], sent: float, bare_us: float) -> dict[str, Any]:
    """One rate's figures: µs per message per process, their sum, the sum ÷ `bare_us`."""
    per = cpu_us_per_message(used, sent)
    total = sum(per.values())
    return {
        "cpu_us_per_message": {name: round(us) for name, us in sorted(per.items())},
        "sum_us": round(total),
        "ratio": ratio(total, bare_us),
    }


def baseline_from(p1: Mapping[str, Any] | None) -> float | None:
    """P1's bare CPU per request, if P1 ran (and was measured) in this invocation."""
    if p1 is None or "error" in p1:
        return None
    value = p1.get("baseline_cpu_us_per_request")
    return float(value) if value else None


def _short(name: str, used: Mapping[str, Any]) -> dict[str, Any]:
    """Keys `p8-streams` -> `streams`."""
    return {key.removeprefix(f"{name}-"): value for key, value in used.items()}


async def _profile(
    ctx: Context, kids: Children, hub: RunningHub, rate: float, seconds: float, warmup: float
) -> dict[str, Any]:
    """One more run at `rate` with each server sampled by py-spy; its flame graphs."""
    assert ctx.profile_dir is not None
    servers = [(c.name.removeprefix("p8-"), c) for c in hub.servers]
    spies = Profiles(kids, servers, ctx.profile_dir, f"P8-{rate:g}", seconds + warmup)
    await spies.start()
    e2e = await open_loop(kids, hub, "p8-profiled", rate, seconds, warmup)
    return {
        **await spies.finish(),
        "p50_ms": e2e.get("p50_ms"),
        "p99_ms": e2e.get("p99_ms"),
        "lost": e2e["lost"],
    }


async def run(ctx: Context, p1: Mapping[str, Any] | None) -> Result:
    """Measure P8 (with P1's result of this invocation, if any)."""
    seconds = ctx.size(20.0, 5.0)
    warmup = ctx.size(3.0, 1.0)
    rows: dict[str, dict[str, Any]] = {}
    profiles: dict[str, Any] = {}
    async with stage(ctx.base, "p8") as st, Children(ctx.log_dir) as kids:
        bare_us = baseline_from(p1)
        source = "P1 of this run"
        if bare_us is None:  # before the hub starts: nothing else of ours runs meanwhile
            bare_us = await bare_cpu_us(ctx, kids, "p8-bare-fastapi")
            source = "measured by P8 (P1 not in this run)"
        async with running_hub(ctx, st, kids, "p8") as hub:
            for rate in RATES:
                e2e = await open_loop(kids, hub, "p8", rate, seconds, warmup)
                used = _short("p8", e2e["cpu_seconds"])
                rows[f"{rate:g}"] = {
                    "rate": rate,
                    **cost_row(used, rate * (seconds + warmup), bare_us),
                    "p50_ms": e2e.get("p50_ms"),
                    "p99_ms": e2e.get("p99_ms"),
                    "lost": e2e["lost"],
                    "sink_lag_p99_ms": e2e["sink_lag_p99_ms"],
                    "core_share": _short("p8", e2e["core_share"]),
                    "cpu_wait_share": _short("p8", e2e["cpu_wait_share"]),
                }
            if ctx.profile_dir is not None:
                for rate in RATES:
                    profiles[f"{rate:g}"] = await _profile(ctx, kids, hub, rate, seconds, warmup)
    if profiles:
        ctx.profiles.update(
            scenario="P8",
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            rate_hz=RATE_HZ,
            seconds=seconds + warmup,
            by_rate=profiles,
        )
    head, light = rows[f"{HEADLINE:g}"], rows[f"{RATES[0]:g}"]
    return {
        "ratio": head["ratio"],
        "ratio_at_100": light["ratio"],
        "sum_us": head["sum_us"],
        "cpu_us_per_message": head["cpu_us_per_message"],
        "baseline_cpu_us_per_request": bare_us,
        "baseline_from": source,
        "rate": HEADLINE,
        "step_seconds": seconds,
        "rates": rows,
    }
