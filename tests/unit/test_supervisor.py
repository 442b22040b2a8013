"""`hub up`'s supervisor: prefixed merged output, stop on a child's exit, clean shutdown."""

from __future__ import annotations

import asyncio
import sys

from hub.supervisor import Child, Supervisor

PY = sys.executable


async def test_prefixes_lines_and_stops_all_when_one_exits() -> None:
    lines: list[str] = []
    sup = Supervisor(
        [
            Child("short", [PY, "-c", "print('hello'); print('bye')"]),
            Child("long", [PY, "-c", "import time; print('up', flush=True); time.sleep(60)"]),
        ],
        color=False,
        out=lines.append,
    )
    code = await asyncio.wait_for(sup.run(), 30)
    assert code == 1
    assert "short | hello" in lines and "short | bye" in lines
    assert any(line.startswith("short | exited with code 0") for line in lines)
    long = sup.children[1].process
    assert long is not None and long.returncode is not None  # stopped, not orphaned


async def test_stop_terminates_children_and_runs_after_start() -> None:
    lines: list[str] = []
    sup = Supervisor(
        [Child("svc", [PY, "-c", "import time; print('ready', flush=True); time.sleep(60)"])],
        color=False,
        out=lines.append,
    )
    started = asyncio.Event()

    async def after() -> None:
        started.set()
        await asyncio.sleep(60)

    run = asyncio.create_task(sup.run(after))
    await asyncio.wait_for(started.wait(), 10)
    sup._stopping.set()  # what Ctrl-C does
    assert await asyncio.wait_for(run, 30) == 0
    proc = sup.children[0].process
    assert proc is not None and proc.returncode is not None
