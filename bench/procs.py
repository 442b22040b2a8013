"""Child processes of a benchmark: pinned to a CPU, with a raised fd limit, always stopped.

Servers go to CPU 0 and load generators to CPU 1 (on a machine with two cores or more),
so the load never shares a core with what it measures. Each child gets its file
descriptor limit raised in its own `preexec` (never this process's), and is told by the
kernel to exit if the benchmark dies (PR_SET_PDEATHSIG), so nothing outlives a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
PINNING = (os.cpu_count() or 1) >= 2
SERVER_CPU: int | None = 0 if PINNING else None
LOAD_CPU: int | None = 1 if PINNING else None
NOFILE = 20_000  # the hard limit of this machine; asked for per child, for P4 and P5

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A scenario could not be measured; the message says what went wrong."""


def _preexec(cpu: int | None, nofile: int | None) -> Callable[[], None]:
    def setup() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if nofile is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            soft = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return setup


def python_argv(module: str, *args: str) -> list[str]:
    """Run `python -m module args` with this interpreter (from the checkout root)."""
    return [sys.executable, "-m", module, *args]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (/proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def schedstat_seconds(text: str) -> tuple[float, float]:
    """(on a CPU, runnable but waiting for one) seconds of a `/proc/.../schedstat` line."""
    running, waiting = text.split()[:2]
    return int(running) / 1e9, int(waiting) / 1e9


def sched_seconds(pid: int) -> tuple[float, float]:
    """(on a CPU, waiting for one) seconds so far, summed over a process's live threads.

    The wait is the kernel's run-queue delay: how long the process was ready to run while
    every core was busy with something else (a thread that ended meanwhile drops out).
    """
    running = waiting = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            ran, waited = schedstat_seconds((task / "schedstat").read_text())
            running, waiting = running + ran, waiting + waited
    return running, waiting


@dataclass
class Child:
    """One started process and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        """The end of its log, for error messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise `BenchError` with the log tail if the process has exited."""
        if self.process.returncode is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    async def json_line(self, key: str, timeout: float) -> dict[str, Any]:
        """The next JSON line on its stdout (a pipe) that has `key`."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise BenchError(f"{self.name} ended before saying {key!r}:\n{self.tail()}")
                if raw.startswith(b"{"):
                    line: dict[str, Any] = orjson.loads(raw)
                    if key in line:
                        return line


class Children:
    """The processes one scenario started; leaving the block stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    async def __aenter__(self) -> Children:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in reversed(self.children):
            await self.stop(child)

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cpu: int | None = None,
        nofile: int | None = None,
        pipe: bool = False,
    ) -> Child:
        """Start `argv` from the checkout root; `pipe`: stdin and stdout are pipes (stderr
        still goes to the log), else both outputs go to `<log_dir>/<name>.log`; a name
        started again (a repeated scenario) logs to `<name>-2.log` and so on, so that its
        readiness and batch lines are its own."""
        log = self.log_dir / f"{name}.log"
        again = 1
        while log.exists():
            again += 1
            log = self.log_dir / f"{name}-{again}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
                stdin=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipe else out,
                stderr=out,
                preexec_fn=_preexec(cpu, nofile),
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops us
                limit=1 << 20,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    async def stop(self, child: Child, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; idempotent."""
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if child in self.children:
            self.children.remove(child)

    async def run_output(
        self,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cpu: int | None = None,
    ) -> bytes:
        """Run a process to its end and return its stdout; `BenchError` unless it exits 0."""
        child = await self.start(name, argv, env=env, cpu=cpu, pipe=True)
        assert child.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                out = await child.process.stdout.read()
                await child.process.wait()
        except TimeoutError:
            raise BenchError(f"{name} did not finish within {timeout:.0f} s") from None
        finally:
            await self.stop(child)
        if child.process.returncode != 0:
            raise BenchError(f"{name} failed ({child.process.returncode}):\n{child.tail()}")
        return out

    async def run_json(
        self,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cpu: int | None = None,
    ) -> dict[str, Any]:
        """Run a load generator to its end; its last stdout line is its JSON result."""
        out = await self.run_output(name, argv, timeout=timeout, env=env, cpu=cpu)
        lines = [line for line in out.splitlines() if line.strip()]
        if not lines:
            raise BenchError(f"{name} printed no result")
        result: dict[str, Any] = orjson.loads(lines[-1])
        return result


async def wait_http(url: str, child: Child | None = None, timeout: float = 60.0) -> None:
    """Return once `url` answers 200; fail early if `child` exits, or after `timeout`."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child is not None:
                child.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s")


async def wait_log(child: Child, text: str, timeout: float) -> None:
    """Return once `text` appears in the child's log; fail if it exits or after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        if child.log.exists() and text in child.log.read_text(errors="replace"):
            return
        await asyncio.sleep(0.2)
    raise BenchError(f"{child.name} did not log {text!r} within {timeout:.0f} s:\n{child.tail()}")


async def metric(url: str, sample: str) -> float:
    """The value of one Prometheus sample (`name{labels}` exactly as exposed) at `url`."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        text = (await http.get(url)).text
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


async def histogram(url: str, name: str) -> dict[float, float]:
    """The cumulative buckets (`le` -> count) of the Prometheus histogram `name` at `url`."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        text = (await http.get(url)).text
    prefix = f'{name}_bucket{{le="'
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            le, _, value = line.removeprefix(prefix).partition('"} ')
            out[float(le)] = float(value)
    return out
