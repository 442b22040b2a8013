"""Sampling profiles of running hub processes (`hub bench --profile`): py-spy flame graphs.

py-spy attaches to a process by its pid (ptrace; no code change in the hub), samples
every thread's Python stack `RATE_HZ` times a second for a fixed time and exits by
itself, writing an SVG flame graph (`--threads`: one tower per thread; idle samples, a
thread py-spy sees waiting, e.g. in epoll, left out). Each SVG's per-thread sample
counts are kept too, as the share of the samples in which the thread was not idle
(samples / (rate x seconds)): running, ready but waiting for a core, or blocked where py-spy
does not recognise a wait. That is not CPU time (P7 and P8 measure that), but says which
threads are busy without opening the graph; so do the functions most often at the top of
a stack (`top_own`). The stacks are also written collapsed (`<name>.collapsed.txt`, one
`frame;frame;... samples` line per stack: speedscope opens it, and two runs diff).
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import ROOT, BenchError, Child, Children, wait_log

RATE_HZ = 100  # py-spy's default: a sampler's own CPU stays small beside 2 busy cores
TOP = 12  # functions per process listed in the results file
_BOX = re.compile(
    r"<title>(.*?) \([\d,]+ samples?, [\d.]+%\)</title>"
    r'<rect [^>]*?y="([\d.]+)"[^>]*?fg:x="(\d+)" fg:w="(\d+)"'
)
_THREAD = re.compile(r"thread \((\d+)\): (.*)")
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    """The py-spy executable of this environment (`make install` brings it)."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed (make install)")
    return found


@dataclass(frozen=True, slots=True)
class Frame:
    """One box of a flame graph: a stack `path` (root first) and its samples."""

    path: tuple[str, ...]
    samples: int  # in this frame or below it
    own: int  # in this frame itself: the top of the stack


def frames(svg: str) -> list[Frame]:
    """The frames of a py-spy (inferno) SVG, from each box's title, depth (its distance
    from the root box `all`) and extent in samples (`fg:x`, `fg:w`). A frame too narrow to
    draw is not in the SVG: its samples count as its parent's own."""
    boxes = [
        (html.unescape(title), float(y), int(x), int(w)) for title, y, x, w in _BOX.findall(svg)
    ]
    root = next((y for title, y, _, _ in boxes if title == "all"), None)
    if root is None:
        return []
    levels = sorted({abs(y - root) for _, y, _, _ in boxes})
    depth = {level: n for n, level in enumerate(levels)}
    # A box's parent is the last box one level up that starts at or before it.
    ordered = sorted(boxes, key=lambda b: (b[2], depth[abs(b[1] - root)]))
    path: list[str] = []
    at: list[int] = []  # where each entry of `path` is in `found`
    found: list[tuple[tuple[str, ...], int]] = []
    below: list[int] = []  # samples of each frame's children
    for title, y, _, w in ordered:
        d = depth[abs(y - root)]
        del path[d:], at[d:]
        if at:
            below[at[-1]] += w
        path.append(title)
        at.append(len(found))
        found.append((tuple(path), w))
        below.append(0)
    return [Frame(p, w, w - below[n]) for n, (p, w) in enumerate(found)]


def collapsed(found: Sequence[Frame]) -> str:
    """Brendan Gregg's collapsed stacks (`frame;frame;... samples`, root `all` left out):
    what speedscope and flamegraph tools read."""
    lines = [f"{';'.join(f.path[1:])} {f.own}" for f in found if f.own and len(f.path) > 1]
    return "\n".join(lines) + "\n" if lines else ""


def thread_shares(found: Sequence[Frame], rate_hz: float, seconds: float) -> dict[str, float]:
    """`{"<thread name> (<tid>)": share of the samples it was not idle}`, busiest first."""
    shares: dict[str, float] = {}
    for f in found:
        match = _THREAD.fullmatch(f.path[-1]) if len(f.path) == 2 else None
        if match:
            shares[f"{match[2]} ({match[1]})"] = round(f.samples / (rate_hz * seconds), 3)
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def top_own(
    found: Sequence[Frame], rate_hz: float, seconds: float, limit: int = TOP
) -> dict[str, float]:
    """The functions most often at the top of a stack, lines of one function merged, as
    shares of the samples (samples / (rate x seconds)), most first."""
    own: dict[str, int] = {}
    for f in found:
        if len(f.path) > 2 and f.own:
            name = _LINE.sub(")", f.path[-1])
            own[name] = own.get(name, 0) + f.own
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    return {name: round(n / (rate_hz * seconds), 3) for name, n in ranked}


def _shown(path: Path) -> str:
    """`path` relative to the checkout when inside it."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


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
            found = frames(svg.read_text())
            stacks = svg.with_suffix(".collapsed.txt")
            stacks.write_text(collapsed(found))
            out[name] = {
                "svg": _shown(svg),
                "collapsed": _shown(stacks),
                "threads_not_idle": thread_shares(found, RATE_HZ, self.seconds),
                "top_own": top_own(found, RATE_HZ, self.seconds),
            }
        return out
