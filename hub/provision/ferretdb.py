"""A local FerretDB (MongoDB wire protocol over SQLite), built from the Go module proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hub.provision.process import ManagedProcess, ProvisionError, run_checked

MODULE = "github.com/FerretDB/FerretDB"


def _go_env(home: Path) -> dict[str, str]:
    go = home / "go"
    # Keep the module and build caches with the rest of the hub's downloads; -modcacherw
    # lets `rm -rf .hub` remove them (Go makes module files read-only by default).
    return {
        "GOMODCACHE": str(go / "mod"),
        "GOCACHE": str(go / "cache"),
        "GOPATH": str(go / "path"),
        "GOFLAGS": "-modcacherw",
        "CGO_ENABLED": "0",
    }


def build_ferretdb(version: str, home: Path) -> Path:
    """Build the `ferretdb` binary once; returns its path.

    `go install MODULE/cmd/ferretdb@version` yields a binary that panics at start, because
    the module zip lacks the generated build/version/version.txt. So the module source is
    downloaded through the proxy, the file is written, and the command is built from it.
    """
    root = home / "ferretdb" / version
    binary = root / "bin" / "ferretdb"
    if binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ProvisionError("Go is needed to build FerretDB: install Go 1.22+ (golang-go)")
    env = _go_env(home)
    log = home / "run" / "provision.log"
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@{version}"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ProvisionError(f"downloading {MODULE}@{version} failed:\n{proc.stdout}{proc.stderr}")
    module_dir = Path(json.loads(proc.stdout)["Dir"])
    src = root / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (src / "build" / "version" / "version.txt").write_text(version + "\n")
    run_checked(
        [go, "build", "-trimpath", "-o", str(binary), "./cmd/ferretdb"],
        what=f"building FerretDB {version}",
        cwd=src,
        env=env,
        log=log,
    )
    shutil.rmtree(src)
    return binary


@dataclass
class FerretDBServer:
    """FerretDB with the SQLite handler, listening on loopback."""

    home: Path
    version: str
    port: int = 27017
    name: str = "ferretdb"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / self.name

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.home / "run")

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def prepare(self) -> list[str]:
        """Build on first use and make the data folder; returns the command line."""
        binary = build_ferretdb(self.version, self.home)
        (self.data_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "state").mkdir(parents=True, exist_ok=True)
        return [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir / 'sqlite'}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--telemetry=disable",
            "--debug-addr=-",
            f"--state-dir={self.data_dir / 'state'}",
            "--log-level=warn",
        ]
