"""The Node.js side of P4/P5: `npm ci` when needed, the Socket.IO baseline and the clients."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.procs import BenchError

NODE_DIR = Path(__file__).resolve().parent / "node"


def ensure_node_modules() -> None:
    """Install the committed lock's packages (`npm ci`) unless already installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise BenchError("node and npm are needed for P4/P5 (apt-get install nodejs npm)")
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"npm ci failed in {NODE_DIR}:\n{done.stderr[-2000:]}")


def clients_argv(
    url: str,
    n: int,
    *,
    proto: str,
    expect: int,
    timeout: float,
    token: str = "",
    tokens_file: Path | None = None,
    hold: bool = False,
) -> list[str]:
    """`node ws_clients.js`: `n` sockets speaking `proto` (hub or sio), each expecting
    `expect` event frames (0: hold idle until stdin closes); `hold`: keep the sockets open
    after reporting `done` until stdin closes (a server's CPU read after `done` then holds
    no teardown of its sockets)."""
    argv = [
        "node",
        str(NODE_DIR / "ws_clients.js"),
        "--url",
        url,
        "--n",
        str(n),
        "--proto",
        proto,
        "--expect",
        str(expect),
        "--timeout",
        str(timeout),
    ]
    if hold:
        argv += ["--hold", "1"]
    if tokens_file is not None:
        argv += ["--tokens", str(tokens_file)]
    else:
        argv += ["--token", token]
    return argv


def sio_server_argv() -> list[str]:
    """`node sio_server.js` (port from the PORT environment variable)."""
    return ["node", str(NODE_DIR / "sio_server.js")]
