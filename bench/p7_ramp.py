"""P7: the highest sustained webhook -> WebSocket rate with everything on this machine.

The same servers as P3 (connectors, one streams worker, a gateway, unpinned), then open
loops at growing rates, one step after the other, each with its own message ids, until a
step's p99 exceeds 1 s or a message never arrives (or the steps run out): the knee is the
last rate that held. Each step is bounded (`STEP_SECONDS` after a short warm-up), so the
whole scenario takes a few minutes at most. Per step and server process, the CPU it used
(from the kernel's scheduler statistics, `bench.procs.sched_seconds`) per message sent, its
share of one core and how long it waited for a core: at the first step that breaks, the
process nearest a full core is the limit. Its `ratio` is the knee over P1's bare FastAPI
req/s when P1 ran in the same invocation (else none, and `ratio_note` says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.context import Context
from bench.p3_latency import RunningHub, open_loop, running_hub
from bench.procs import Children
from bench.report import Result
from bench.stage import stage
from bench.stats import ratio

STEPS = (100.0, 200.0, 400.0, 700.0, 1000.0, 1400.0, 2000.0, 2800.0)
LIMIT_MS = 1000.0


def holds(step: Mapping[str, Any]) -> bool:
    """True when a step kept its p99 within the limit and lost nothing."""
    p99 = step.get("p99_ms")
    return p99 is not None and p99 <= LIMIT_MS and not step.get("lost")


def knee(steps: Sequence[Mapping[str, Any]]) -> float:
    """The highest rate of the steps that held, before the first that did not (0: none)."""
    best = 0.0
    for step in steps:
        if not holds(step):
            break
        best = float(step["rate"])
    return best


def cpu_us_per_message(used: Mapping[str, float], sent: float) -> dict[str, float]:
    """Each process's CPU seconds `used` over `sent` messages, in microseconds (unrounded)."""
    return {name: seconds / sent * 1e6 for name, seconds in used.items()}


def knee_ratio(knee_rate: float, p1: Mapping[str, Any] | None) -> dict[str, Any]:
    """`ratio` (knee ÷ P1's bare req/s) and its `baseline`, or why there is none."""
    if p1 is None or "error" in p1:
        why = "P1 did not run" if p1 is None else "P1 failed"
        return {"ratio": None, "ratio_note": f"{why} in this invocation: no ratio"}
    bare = float(p1["baseline"])
    return {"ratio": ratio(knee_rate, bare), "baseline": bare, "baseline_name": "bare FastAPI"}


def limit_process(step: Mapping[str, Any]) -> str:
    """The server that used the most of a core during `step`."""
    shares: Mapping[str, float] = step["core_share"]
    return max(shares, key=lambda name: shares[name])


async def _step(
    kids: Children, hub: RunningHub, name: str, rate: float, seconds: float, warmup: float
) -> dict[str, Any]:
    e2e = await open_loop(kids, hub, name, rate, seconds, warmup)
    sent = rate * (seconds + warmup)
    used = e2e["cpu_seconds"]
    media = {}
    if "text" in e2e:  # P7m: the text and media messages apart, the files' settling
        media = {
            "text_p99_ms": e2e["text"].get("p99_ms"),
            "media_p99_ms": e2e["media"].get("p99_ms"),
            "media_settled_p99_ms": e2e["media_settled"].get("p99_ms"),
            "media_unsettled": e2e["media_unsettled"],
            "media_failed": e2e["media_failed"],
        }
    return {
        "rate": rate,
        "p50_ms": e2e.get("p50_ms"),
        "p99_ms": e2e.get("p99_ms"),
        **media,
        "lost": e2e["lost"],
        "sink_lag_p99_ms": e2e["sink_lag_p99_ms"],
        "cpu_us_per_message": {n: round(u) for n, u in cpu_us_per_message(used, sent).items()},
        "core_share": e2e["core_share"],
        "cpu_wait_share": e2e["cpu_wait_share"],
    }


async def run(ctx: Context, p1: Mapping[str, Any] | None) -> Result:
    """Measure P7 (with P1's result of this invocation, if any)."""
    return await _ramp(ctx, p1, "p7")


async def run_media(
    ctx: Context, p1: Mapping[str, Any] | None, p7: Mapping[str, Any] | None
) -> Result:
    """Measure P7m: P7 with one webhook in ten carrying a file (`bench/media_mix.py`);
    its knee also over P7's of this invocation (`knee_vs_p7`), when P7 ran."""
    result = await _ramp(ctx, p1, "p7m", media=True)
    if p7 is not None and "error" not in p7 and p7["knee_msg_per_s"]:
        result["knee_vs_p7"] = ratio(result["knee_msg_per_s"], p7["knee_msg_per_s"])
        result["p7_knee_msg_per_s"] = p7["knee_msg_per_s"]
    at_knee = [s for s in result["steps"] if s["rate"] == result["knee_msg_per_s"]]
    result["media_settled_p99_ms"] = at_knee[0]["media_settled_p99_ms"] if at_knee else None
    return result


async def _ramp(
    ctx: Context, p1: Mapping[str, Any] | None, name: str, *, media: bool = False
) -> Result:
    step_seconds = ctx.size(20.0, 5.0)
    warmup = ctx.size(3.0, 1.0)
    steps: list[dict[str, Any]] = []
    async with (
        stage(ctx.base, name) as st,
        Children(ctx.log_dir) as kids,
        running_hub(ctx, st, kids, name, media=media) as hub,
    ):
        for rate in STEPS[: ctx.size(len(STEPS), 4)]:
            steps.append(await _step(kids, hub, name, rate, step_seconds, warmup))
            if not holds(steps[-1]):
                break
    at_knee = [s for s in steps if s["rate"] == knee(steps)]
    return {
        "knee_msg_per_s": knee(steps),
        **knee_ratio(knee(steps), p1),
        "limit_process": limit_process(steps[-1]),
        "cpu_us_per_message": at_knee[0]["cpu_us_per_message"] if at_knee else {},
        "step_seconds": step_seconds,
        "limit_ms": LIMIT_MS,
        "steps": steps,
    }
