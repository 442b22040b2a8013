"""Background server processes tracked by pid file: start detached, stop by pid, read logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ProvisionError(Exception):
    """A local server could not be provisioned or started; the message says what to fix."""

    retriable = False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int) -> str | None:
    """What tells this process from a later one given the same pid: the boot and the
    start time (clock ticks since boot, /proc/<pid>/stat field 22); None without /proc."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}/{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return None


def _started_at(pid: int) -> float | None:
    """When the process started (epoch seconds), from /proc; None without it."""
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """A server started by the hub, remembered by `<run_dir>/<name>.pid` and logging to `.log`."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process this record names, or None (stale files removed).

        The file holds the pid and the process's identity at start: after a reboot, or
        once the server has exited, the pid may name an unrelated process, which must
        never be signalled."""
        try:
            pid_text, _, recorded = self.pid_file.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        current = process_identity(pid)
        if current is None:  # without /proc (not Linux) the pid alone decides
            same = True
        elif recorded:
            same = recorded == current
        else:
            # A file of an earlier version holds the pid alone: it was written just after
            # the start, so the process it names started shortly before the file.
            started = _started_at(pid)
            try:
                written = self.pid_file.stat().st_mtime
            except OSError:
                return None
            same = started is not None and -1 <= written - started <= 30
        if same and pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Start `argv` in its own session (it outlives the CLI) and record its pid."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} start {argv[0]}\n".encode())
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        identity = process_identity(proc.pid)
        self.pid_file.write_text(f"{proc.pid} {identity}" if identity else str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
        """Stop the recorded process (and its group); True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while pid_alive(pid):
                time.sleep(0.05)
        # A child of ours that exited is a zombie until reaped; reap it if we can.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def run_checked(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> None:
    """Run a provisioning step to completion, raising `ProvisionError` with its output tail."""
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (proc.stdout or "") + (proc.stderr or "")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(argv)}\n{output}\n")
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise ProvisionError(f"{what} failed (exit {proc.returncode}):\n{tail}")


class LocalServer:
    """What a server the hub runs from `home` keeps by its `name`: its data folder and its
    managed process (the dataclasses that inherit this declare both fields)."""

    home: Path
    name: str

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / self.name

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.home / "run")
