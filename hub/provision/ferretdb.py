"""A local FerretDB (MongoDB wire protocol over SQLite), built from the Go module proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hub.provision.cache import cached_entry, copy_out, key_of
from hub.provision.process import LocalServer, ProvisionError, run_checked

MODULE = "github.com/FerretDB/FerretDB"

# Source fixes applied before the build, in name order: unified diffs, each saying why.
PATCH_DIR = Path(__file__).parent / "patches" / "ferretdb"


def patch_files() -> list[Path]:
    files = sorted(PATCH_DIR.glob("*.patch"))
    if not files:  # an unpatched build would hang on bulk writes: never build one
        raise ProvisionError(f"no FerretDB patches in {PATCH_DIR} (package data missing?)")
    return files


def patches_key() -> str:
    """A digest of the patch files: the build's folder and cache entry carry it, so a
    machine with a build from other patches builds again, once."""
    return key_of(*(f"{p.name}\0{p.read_text()}" for p in patch_files()))


def apply_patches(src: Path) -> None:
    """Apply the patch files to a FerretDB source tree with `git apply` (each whole or not
    at all); one that no longer applies stops provisioning, named."""
    git = shutil.which("git")
    if git is None:
        raise ProvisionError("git is needed to patch FerretDB's source: install git")
    # The source may lie inside a checkout (.hub/): keep git from taking it for a
    # subfolder of that repository, where it would skip the files.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CEILING_DIRECTORIES"] = str(src.resolve().parent)
    for patch in patch_files():
        proc = subprocess.run(
            [git, "apply", "-p1", str(patch)],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ProvisionError(
                f"FerretDB patch {patch.name} does not apply to {src}:\n{proc.stderr}"
            )


def _go_env(home: Path) -> dict[str, str]:
    go = home / "go"
    # -modcacherw lets `rm -rf` remove the module cache (Go makes its files read-only).
    return {
        "GOMODCACHE": str(go / "mod"),
        "GOCACHE": str(go / "cache"),
        "GOPATH": str(go / "path"),
        "GOFLAGS": "-modcacherw",
        "CGO_ENABLED": "0",
    }


def _go_build(version: str, work: Path, binary: Path, go_home: Path, log: Path) -> None:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ProvisionError("Go is needed to build FerretDB: install Go 1.22+ (golang-go)")
    env = _go_env(go_home)
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
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (src / "build" / "version" / "version.txt").write_text(version + "\n")
    apply_patches(src)
    run_checked(
        [go, "build", "-trimpath", "-buildvcs=false", "-o", str(binary), "./cmd/ferretdb"],
        what=f"building FerretDB {version}",
        cwd=src,
        env=env,
        log=log,
    )
    shutil.rmtree(src)


def build_ferretdb(version: str, home: Path, cache: Path | None = None) -> Path:
    """Build the `ferretdb` binary once into `<home>/ferretdb/<version>-<patches key>/bin`;
    returns its path. Copied from the machine's `cache` when given (built there once per
    version and patch files; Go's module and build caches live there too).

    `go install MODULE/cmd/ferretdb@version` yields a binary that panics at start, because
    the module zip lacks the generated build/version/version.txt. So the module source is
    downloaded through the proxy (checked against Go's checksum database), the file is
    written, the patches are applied, and the command is built from it.
    """
    patches = patches_key()
    root = home / "ferretdb" / f"{version}-{patches}"
    binary = root / "bin" / "ferretdb"
    if binary.exists():
        return binary
    log = home / "run" / "provision.log"
    if cache is None:
        _go_build(version, root, binary, home, log)
        return binary

    def build(entry: Path) -> None:
        _go_build(version, entry.parent / ".build", entry / "ferretdb", cache, log)

    key = f"{version}-{key_of(version, patches)}"
    copy_out(cached_entry(cache, "ferretdb", key, build), root / "bin")
    return binary


@dataclass
class FerretDBServer(LocalServer):
    """FerretDB with the SQLite handler, listening on loopback."""

    home: Path
    version: str
    port: int = 27017
    name: str = "ferretdb"
    cache: Path | None = None  # the machine's provisioning cache (hub.provision.cache)

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def prepare(self) -> list[str]:
        """Build on first use and make the data folder; returns the command line."""
        binary = build_ferretdb(self.version, self.home, self.cache)
        (self.data_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "state").mkdir(parents=True, exist_ok=True)
        return [
            str(binary),
            "--handler=sqlite",
            # WAL without an fsync per commit (docs/operations.md, FerretDB versus MongoDB).
            f"--sqlite-url=file:{self.data_dir / 'sqlite'}/?_pragma=synchronous(NORMAL)",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--telemetry=disable",
            "--debug-addr=-",
            f"--state-dir={self.data_dir / 'state'}",
            "--log-level=warn",
        ]
