"""`hub bench`: run the selected scenarios, write `bench/results/latest.json`, print the table.

A full run measures P2 and P3 three times (`REPEATS`; the table shows the worst run); P7
and P8 take P1's baseline of the same invocation when P1 ran before them. `--profile`
records flame graphs in P8's run (`bench/p8_cost.py`) into `bench/results/profiles/`.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.context import Context
from bench.machine import machine_facts
from bench.procs import PINNING, BenchError
from bench.report import REPEATED, SCENARIOS, Result, document, finish, markdown_table, worst_of
from hubcore.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
REPEATS = 3  # runs of each of `REPEATED` in a full (not --quick) run

# A runner gets the invocation and the results measured before it (P7 and P8 use P1's).
Runner = Callable[[Context, Mapping[str, Result]], Awaitable[dict[str, Result]]]


def _runners(selected: set[str]) -> list[tuple[tuple[str, ...], Runner]]:
    """(scenario ids measured together, runner) for what was selected, in order."""
    from bench import (
        p1_webhooks,
        p3_latency,
        p4_idle,
        p5_burst,
        p7_ramp,
        p8_cost,
        p26_streams,
        presence_cost,
        push_cost,
        recovery,
        w1_webhooks,
    )

    replayed: list[bool] = []  # P6 once, with the first of P2's runs

    async def p1(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"P1": await p1_webhooks.run(ctx)}

    async def p26(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        replay = "P6" in selected and not replayed
        replayed.append(replay)
        return await p26_streams.run(ctx, replay=replay)

    async def p3(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"P3": await p3_latency.run(ctx)}

    async def p3m(ctx: Context, earlier: Mapping[str, Result]) -> dict[str, Result]:
        return {"P3m": await p3_latency.run_media(ctx, earlier.get("P3"))}

    async def p4(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"P4": await p4_idle.run(ctx)}

    async def p4s(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"P4s": await p4_idle.run(ctx, socketio=True)}

    async def r1(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"R1": await recovery.run(ctx)}

    async def p5(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return await p5_burst.run(ctx, ws="P5" in selected, socketio="P5s" in selected)

    async def p7(ctx: Context, earlier: Mapping[str, Result]) -> dict[str, Result]:
        return {"P7": await p7_ramp.run(ctx, earlier.get("P1"))}

    async def p7m(ctx: Context, earlier: Mapping[str, Result]) -> dict[str, Result]:
        return {"P7m": await p7_ramp.run_media(ctx, earlier.get("P1"), earlier.get("P7"))}

    async def p8(ctx: Context, earlier: Mapping[str, Result]) -> dict[str, Result]:
        return {"P8": await p8_cost.run(ctx, earlier.get("P1"))}

    async def n1(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"N1": await push_cost.run(ctx)}

    async def w1(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"W1": await w1_webhooks.run(ctx)}

    async def n2(ctx: Context, _: Mapping[str, Result]) -> dict[str, Result]:
        return {"N2": await presence_cost.run(ctx)}

    # P6 replays the history P2 builds, so selecting it runs P2 too.
    table: list[tuple[tuple[str, ...], Runner]] = [
        (("P1",), p1),
        (("P2", "P6"), p26),
        (("P3",), p3),
        (("P3m",), p3m),
        (("P4",), p4),
        (("P4s",), p4s),
        (("P5", "P5s"), p5),
        (("R1",), r1),
        (("P7",), p7),
        (("P7m",), p7m),
        (("P8",), p8),
        (("N1",), n1),
        (("W1",), w1),
        (("N2",), n2),
    ]
    return [(ids, fn) for ids, fn in table if selected & set(ids)]


def repeats_of(ids: tuple[str, ...], *, quick: bool) -> int:
    """How many times a runner of `ids` runs: `REPEATS` for P2 and P3 unless `quick`."""
    return 1 if quick or not set(ids) & set(REPEATED) else REPEATS


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
    output: Path,
    facts: dict[str, Any],
    results: dict[str, Result],
    profiles: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge `results` (and `profiles`) into the document at `output` (atomically
    replaced); return it."""
    previous = orjson.loads(output.read_bytes()) if output.exists() else None
    doc = document(facts, results, previous, profiles)
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
    profile: bool = False,
    output: Path = RESULTS,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, Any], bool]:
    """Run `selected` (`profile`: with flame graphs, P8 included), write `output` and
    return (the document, True if all measured)."""
    log_dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    ctx = Context(base, quick, log_dir, output.parent / "profiles" if profile else None)
    if profile and "P8" not in selected:
        selected = selected | {"P8"}
        say("--profile samples the servers during P8's runs: P8 added")
    say(f"hub bench: {', '.join(sorted(selected))}{' (quick)' if quick else ''}; logs in {log_dir}")
    results: dict[str, Result] = {}
    ok = True
    for ids, runner in _runners(selected):
        repeats = repeats_of(ids, quick=quick)
        runs: dict[str, list[Result]] = {}
        for attempt in range(repeats):
            started = time.monotonic()
            at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                measured = await runner(ctx, results)
            except Exception as exc:  # one scenario failing must not lose the others
                ok = False
                detail = str(exc) if isinstance(exc, BenchError) else traceback.format_exc()
                say(f"{'/'.join(ids)} failed: {detail}")
                first_line = (str(exc) or type(exc).__name__).splitlines()[0]
                # A repeat measures only the repeated ids (P2, not P6 again).
                failed = ids if attempt == 0 else [i for i in ids if i in REPEATED]
                measured = {i: {"error": first_line[:300]} for i in failed}
            for scenario_id, result in measured.items():
                if scenario_id in selected:
                    runs.setdefault(scenario_id, []).append(finish(scenario_id, result, at))
                    say(f"{scenario_id}: {orjson.dumps(runs[scenario_id][-1]).decode()}")
            run_no = f" (run {attempt + 1} of {repeats})" if repeats > 1 else ""
            say(f"{'/'.join(ids)} took {time.monotonic() - started:.0f} s{run_no}")
        for scenario_id, done in runs.items():
            results[scenario_id] = done[0] if len(done) == 1 else worst_of(scenario_id, done)
    facts = await machine_facts(base, quick=quick, pinned=PINNING)
    doc = write_results(output, facts, results, ctx.profiles)
    say("")
    say(markdown_table(doc))
    return doc, ok
