"""Sampling profiles of running hub processes (`hub bench --profile`): py-spy flame graphs.

py-spy attaches to a process by its pid (ptrace; no code change in the hub), samples
every thread's Python stack `RATE_HZ` times a second for a fixed time and exits by
itself, writing an SVG flame graph (`--threads`: one tower per thread; idle samples, a
thread py-spy sees waiting, e.g. in epoll, left out). Each SVG's per-thread sample
counts are kept too, as the share of the samples in which the thread was not idle
(samples / (rate x seconds)): running, ready but waiting for a core, or blocked where py-spy
does not recognise a wait. That is not CPU time (P7 and P8 measure that), but says which
threads are busy without opening the graph.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import ROOT, BenchError, Child, Children, wait_log

RATE_HZ = 100  # py-spy's default: a sampler's own CPU stays small beside 2 busy cores
_THREAD = re.compile(r"<title>thread \((\d+)\): (.*?) \(([\d,]+) samples?, [\d.]+%\)</title>")


def py_spy() -> str:
    """The py-spy executable of this environment (`make install` brings it)."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed (make install)")
    return found


def thread_shares(svg: str, rate_hz: float, seconds: float) -> dict[str, float]:
    """`{"<thread name> (<tid>)": share of the samples it was not idle}` from a py-spy
    `--threads` SVG, busiest first."""
    shares: dict[str, float] = {}
    for tid, name, samples in _THREAD.findall(svg):
        count = int(samples.replace(",", ""))
        shares[f"{html.unescape(name)} ({tid})"] = round(count / (rate_hz * seconds), 3)
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


class Profiles:
    """py-spy on each of `servers` for `seconds`, into `<out_dir>/<label>-<name>.svg`."""

    def __init__(
        self,
        kids: Children,
        servers: Sequence[tuple[str, Child]],
        out_dir: Path,
        label: str,
        seconds: float,
    ) -> None:
        self.kids = kids
        self.servers = servers
        self.out_dir = out_dir
        self.label = label
        self.seconds = seconds
        self.spies: list[tuple[str, Child, Path]] = []

    async def start(self) -> None:
        """Attach to every server; return once each sampler says it is sampling."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, server in self.servers:
            svg = self.out_dir / f"{self.label}-{name}.svg"
            svg.unlink(missing_ok=True)
            argv = [py_spy(), "record", "--pid", str(server.pid), "--rate", str(RATE_HZ)]
            argv += ["--duration", f"{self.seconds:g}", "--threads", "--format", "flamegraph"]
            spy = await self.kids.start(f"py-spy-{self.label}-{name}", [*argv, "-o", str(svg)])
            self.spies.append((name, spy, svg))
        for _, spy, _ in self.spies:
            await wait_log(spy, "Sampling process", timeout=30)

    async def finish(self) -> dict[str, Any]:
        """Wait for each sampler to end on its own; `{name: {"svg": path, "threads": ...}}`
        with paths relative to the checkout."""
        out: dict[str, Any] = {}
        for name, spy, svg in self.spies:
            try:  # py-spy stops by itself after `seconds`; a stuck one is stopped
                async with asyncio.timeout(self.seconds + 60):
                    await spy.process.wait()
            except TimeoutError:
                await self.kids.stop(spy)
            if spy.process.returncode != 0 or not svg.exists():
                raise BenchError(f"py-spy on {name} failed:\n{spy.tail()}")
            out[name] = {
                "svg": str(svg.relative_to(ROOT) if svg.is_relative_to(ROOT) else svg),
                "threads_not_idle": thread_shares(svg.read_text(), RATE_HZ, self.seconds),
            }
        return out
