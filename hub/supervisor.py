"""`hub up`: runs connectors, streams and gateway as child processes with merged, prefixed logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

COLORS = {
    "connectors": "\x1b[36m",
    "streams": "\x1b[35m",
    "gateway": "\x1b[32m",
    "demo": "\x1b[33m",
}
RESET = "\x1b[0m"


@dataclass
class Child:
    """One supervised process: a name for its log prefix and its argv."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None


def _silence_stdout() -> None:
    # Later writes, and the interpreter's flush at exit, go nowhere instead of raising.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def until_reader_gone(
    write: Callable[[str], None], on_gone: Callable[[], None] = _silence_stdout
) -> Callable[[str], None]:
    """`write`, until whoever reads our output has gone (`make up | tee log`, then Ctrl-C:
    `tee` dies first), then nothing: stopping every child must not end at the first line
    it reports."""
    gone = False

    def out(line: str) -> None:
        nonlocal gone
        if gone:
            return
        try:
            write(line)
        except BrokenPipeError:
            gone = True
            on_gone()

    return out


def hub_argv(*args: str) -> list[str]:
    """Run a `hub` subcommand with the same interpreter (works without the console script)."""
    return [sys.executable, "-m", "hub", *args]


class Supervisor:
    """Starts children, prefixes each output line with its name, stops all on Ctrl-C.

    When any child exits on its own, the others are stopped too: a half-running hub
    would look healthy while losing its push path, which is worse than stopping loudly.
    """

    def __init__(
        self,
        children: Sequence[Child],
        *,
        color: bool | None = None,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.children = list(children)
        self.color = sys.stdout.isatty() if color is None else color
        self.out = until_reader_gone(out or (lambda line: print(line, flush=True)))
        self.width = max(len(c.name) for c in self.children)
        self._stopping = asyncio.Event()

    def _prefix(self, name: str) -> str:
        label = f"{name:<{self.width}} |"
        if self.color:
            return f"{COLORS.get(name, '')}{label}{RESET} "
        return label + " "

    def say(self, name: str, line: str) -> None:
        """Print one line under a child's (or the supervisor's) prefix."""
        self.out(self._prefix(name) + line)

    async def _pump(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        async for raw in child.process.stdout:
            self.say(child.name, raw.decode(errors="replace").rstrip())

    async def _start(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **child.env},
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child, SIGKILL what is still running after `timeout`."""
        self._stopping.set()
        running = [c for c in self.children if c.process and c.process.returncode is None]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        for child in running:
            assert child.process is not None
            try:
                await asyncio.wait_for(child.process.wait(), timeout)
            except TimeoutError:
                self.say(child.name, f"did not stop in {timeout:.0f}s; killing")
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()

    async def run(self, after_start: Callable[[], Coroutine[Any, Any, None]] | None = None) -> int:
        """Run until Ctrl-C/SIGTERM or a child exits; returns the exit code for `hub up`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        for child in self.children:
            await self._start(child)
        pumps = [asyncio.create_task(self._pump(c)) for c in self.children]
        waits = {asyncio.create_task(c.process.wait()): c for c in self.children if c.process}
        extra = asyncio.create_task(after_start()) if after_start else None
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        for task in done:
            if task in waits:
                child = waits[task]
                code = 1
                self.say(child.name, f"exited with code {task.result()}; stopping the hub")
        if extra is not None:
            extra.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await extra
        await self.stop()
        await asyncio.gather(*pumps, return_exceptions=True)
        stop.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        return code
