"""The CLI as the docs describe it: `hub token` after `hub up`, `--version`, fixed choices,
`hub services down` signalling only what it started, Ctrl-C with the output pipe gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from gateway.auth import TokenVerifier
from hub.cli import ModeName, PlatformName, app
from hub.provision.process import ManagedProcess, pid_alive, process_identity
from hub.up import local_settings
from hubcore.account_rules import Mode
from hubcore.settings import Settings
from schemas.messages import PLATFORMS
from tests.local_servers import run_hub

PY = sys.executable
SLEEPER = [PY, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A shell with no HUB_* settings, no .env, and its own services folder."""
    for key in list(os.environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_SERVICES_DIR", str(tmp_path / "services"))
    return {k: v for k, v in os.environ.items()}


def _hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_hub(env, *args, timeout=60)


def test_hub_token_mints_what_the_hub_up_processes_accept(
    local_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _hub(local_env, "token", "pia")
    assert before.returncode == 2
    assert "hub up" in before.stderr and before.stdout == ""
    # What `hub up` hands each process: the generated secret and development mode.
    _, process_env = local_settings(Settings(_env_file=None))
    assert (Path(local_env["HUB_SERVICES_DIR"]) / "dev-credentials-key").exists()
    for key, value in process_env.items():
        monkeypatch.setenv(key, value)
    gateway_settings = Settings(_env_file=None)
    minted = _hub(local_env, "token", "pia")  # the shell without those variables
    assert minted.returncode == 0, minted.stderr
    assert TokenVerifier(gateway_settings).verify(minted.stdout.strip()).user_id == "pia"


def test_version(local_env: dict[str, str]) -> None:
    shown = _hub(local_env, "--version")
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"hub {version('hub')}"


def test_platform_and_mode_are_fixed_choices(local_env: dict[str, str]) -> None:
    assert tuple(PlatformName) == PLATFORMS
    assert {m.value for m in ModeName} == set(get_args(Mode))
    base = ["accounts", "add", "--user", "u", "--external-id", "x"]
    for bad in (["--platform", "icq"], ["--platform", "slack", "--mode", "push"]):
        result = CliRunner().invoke(app, [*base, *bad])
        assert result.exit_code == 2
        assert "Invalid value" in result.output


def test_services_down_signals_only_the_process_it_started(tmp_path: Path) -> None:
    server = ManagedProcess("server", tmp_path)
    pid = server.start(SLEEPER)
    recorded = server.pid_file.read_text()
    assert server.stop(timeout=5) and not pid_alive(pid)
    # The pid comes back to another process (after a reboot, or reused): same file, same pid
    # text as far as a pid-only record could tell; it must not be signalled.
    stranger = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        server.pid_file.write_text(f"{stranger.pid} {recorded.split()[1]}")
        assert server.pid() is None and not server.stop(timeout=1)
        assert stranger.poll() is None
        # A record of an earlier version (the pid alone) written long before this process
        # started is not trusted; one written just after its start is.
        server.pid_file.write_text(str(stranger.pid))
        hour_ago = time.time() - 3600
        os.utime(server.pid_file, (hour_ago, hour_ago))
        assert not server.stop(timeout=1)
        assert stranger.poll() is None
        server.pid_file.write_text(str(stranger.pid))
        assert server.pid() == stranger.pid
        server.pid_file.write_text(f"{stranger.pid} {process_identity(stranger.pid)}")
        assert server.stop(timeout=5)  # the one it names
        assert not pid_alive(stranger.pid)  # (and reaped by stop, being our child)
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()


# `hub up` with its servers and processes replaced by sleepers that print their pids: the
# CLI's own wiring (echo, supervisor, the servers stopped in its `finally`) is what runs.
HUB_UP = """
import asyncio, sys
from pathlib import Path
import hub.provision.services as services
import hub.up as up_module
from hub.cli import app
from hub.provision.process import ManagedProcess
from hub.supervisor import Child, Supervisor

CHILD = [sys.executable, "-c", "import os, time\\nprint(os.getpid(), flush=True)\\n"
         "while True: print('x' * 200, flush=True); time.sleep(0.01)"]

class Servers:
    def __init__(self, settings):
        self.server = ManagedProcess("ferretdb", Path(sys.argv[1]))
    def up(self, echo, timeout=180.0):
        echo(str(self.server.start([sys.executable, "-c", "import time; time.sleep(60)"])))
        return ["ferretdb"]
    def down(self, echo, only=None):
        echo("ferretdb: stopping")
        self.server.stop(timeout=5)

def run_up(settings, *, demo, say):
    say("starting")
    return asyncio.run(Supervisor([Child(f"c{n}", CHILD) for n in range(3)]).run())

services.LocalServices = Servers
up_module.up = run_up
app(["up"])
"""


def test_interrupt_stops_every_child_when_the_output_pipe_is_gone(
    local_env: dict[str, str], tmp_path: Path
) -> None:
    # `make up | tee log`, Ctrl-C: `tee` is gone before the hub reports stopping anything.
    hub = subprocess.Popen(
        [PY, "-c", HUB_UP, str(tmp_path)], env=local_env, stdout=subprocess.PIPE, text=True
    )
    assert hub.stdout is not None
    pids: set[int] = set()
    while len(pids) < 4:  # the server, then the three children
        line = hub.stdout.readline()
        assert line, "`hub up` ended before its children started"
        word = line.rsplit("|", 1)[-1].strip()
        if word.isdigit():
            pids.add(int(word))
    hub.stdout.close()  # the reader has gone
    hub.send_signal(signal.SIGINT)
    assert hub.wait(30) == 0
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # grandchildren: reaped by init once they exit, not by us
    assert not [p for p in pids if pid_alive(p)]
