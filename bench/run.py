"""`hub bench`: run the selected scenarios, write `bench/results/latest.json`, print the table."""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.context import Context
from bench.machine import machine_facts
from bench.procs import PINNING, BenchError
from bench.report import SCENARIOS, Result, document, finish, markdown_table
from hubcore.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

Runner = Callable[[Context], Awaitable[dict[str, Result]]]


def _runners(selected: set[str]) -> list[tuple[tuple[str, ...], Runner]]:
    """(scenario ids measured together, runner) for what was selected, in order."""
    from bench import p1_webhooks, p3_latency, p4_idle, p5_burst, p7_ramp, p26_streams, recovery

    async def p1(ctx: Context) -> dict[str, Result]:
        return {"P1": await p1_webhooks.run(ctx)}

    async def p26(ctx: Context) -> dict[str, Result]:
        return await p26_streams.run(ctx, replay="P6" in selected)

    async def p3(ctx: Context) -> dict[str, Result]:
        return {"P3": await p3_latency.run(ctx)}

    async def p4(ctx: Context) -> dict[str, Result]:
        return {"P4": await p4_idle.run(ctx)}

    async def p4s(ctx: Context) -> dict[str, Result]:
        return {"P4s": await p4_idle.run(ctx, socketio=True)}

    async def r1(ctx: Context) -> dict[str, Result]:
        return {"R1": await recovery.run(ctx)}

    async def p5(ctx: Context) -> dict[str, Result]:
        return await p5_burst.run(ctx, ws="P5" in selected, socketio="P5s" in selected)

    async def p7(ctx: Context) -> dict[str, Result]:
        return {"P7": await p7_ramp.run(ctx)}

    # P6 replays the history P2 builds, so selecting it runs P2 too.
    table: list[tuple[tuple[str, ...], Runner]] = [
        (("P1",), p1),
        (("P2", "P6"), p26),
        (("P3",), p3),
        (("P4",), p4),
        (("P4s",), p4s),
        (("P5", "P5s"), p5),
        (("R1",), r1),
        (("P7",), p7),
    ]
    return [(ids, fn) for ids, fn in table if selected & set(ids)]


def parse_only(only: str | None) -> set[str]:
    """`P1,P3` -> {"P1", "P3"}; None -> all. Raises `BenchError` on an unknown id."""
    if not only:
        return set(SCENARIOS)
    by_upper = {scenario_id.upper(): scenario_id for scenario_id in SCENARIOS}
    chosen = {
        by_upper.get(part.strip().upper(), part.strip().upper())
        for part in only.split(",")
        if part.strip()
    }
    unknown = sorted(chosen - set(SCENARIOS))
    if unknown:
        raise BenchError(f"unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    return chosen


def write_results(
    output: Path, facts: dict[str, Any], results: dict[str, Result]
) -> dict[str, Any]:
    """Merge `results` into the document at `output` (atomically replaced); return it."""
    previous = orjson.loads(output.read_bytes()) if output.exists() else None
    doc = document(facts, results, previous)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    tmp.replace(output)
    return doc


async def run(
    base: Settings,
    selected: set[str],
    *,
    quick: bool,
    output: Path = RESULTS,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, Any], bool]:
    """Run `selected`, write `output` and return (the document, True if all measured)."""
    log_dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    ctx = Context(base, quick, log_dir)
    say(f"hub bench: {', '.join(sorted(selected))}{' (quick)' if quick else ''}; logs in {log_dir}")
    results: dict[str, Result] = {}
    ok = True
    for ids, runner in _runners(selected):
        started = time.monotonic()
        at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            measured = await runner(ctx)
        except Exception as exc:  # one scenario failing must not lose the others
            ok = False
            detail = str(exc) if isinstance(exc, BenchError) else traceback.format_exc()
            say(f"{'/'.join(ids)} failed: {detail}")
            first_line = (str(exc) or type(exc).__name__).splitlines()[0]
            measured = {i: {"error": first_line[:300]} for i in ids}
        for scenario_id, result in measured.items():
            if scenario_id in selected:
                results[scenario_id] = finish(scenario_id, result, at)
                say(f"{scenario_id}: {orjson.dumps(results[scenario_id]).decode()}")
        say(f"{'/'.join(ids)} took {time.monotonic() - started:.0f} s")
    facts = await machine_facts(base, quick=quick, pinned=PINNING)
    doc = write_results(output, facts, results)
    say("")
    say(markdown_table(doc))
    return doc, ok
