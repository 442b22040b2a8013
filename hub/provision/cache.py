"""The machine's cache of provisioning results (`HUB_CACHE_DIR`, `~/.cache/hub`): the Kafka
jars and the FerretDB binary, shared by every checkout, so a clean clone starts its servers
without fetching Kafka or building FerretDB again.

An entry is a folder published whole (built beside it, then renamed) with a `SHA256SUMS`
of its files; it is used only when every file still matches, else it is built again.
Builders hold the cache's lock, so checkouts provisioning at once build an entry once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "SHA256SUMS"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block; other processes
    wait for it, and a process that dies lets go of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path) -> None:
    lines = [f"{sha256_file(p)}  {p.relative_to(folder)}\n" for p in _files(folder)]
    (folder / MANIFEST).write_text("".join(lines))


def verified(folder: Path) -> bool:
    """True when `folder` holds exactly the files its manifest lists, each unchanged."""
    try:
        listed = (folder / MANIFEST).read_text().splitlines()
    except OSError:
        return False
    expected: dict[str, str] = {}
    for line in filter(None, listed):
        digest, _, name = line.partition("  ")
        expected[name] = digest
    names = {str(p.relative_to(folder)) for p in _files(folder)}
    if not expected or names != set(expected):
        return False
    return all(sha256_file(folder / name) == digest for name, digest in expected.items())


def cached_entry(cache: Path, kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The verified folder `<cache>/<kind>/<key>`, made by `build(folder)` when missing or
    damaged."""
    entry = cache / kind / key
    with file_lock(cache / f"{kind}.lock"):
        if verified(entry):
            return entry
        staging = entry.with_name(f".{key}.partial")
        for stale in (staging, entry):
            if stale.exists():
                shutil.rmtree(stale)
        staging.mkdir(parents=True)
        build(staging)
        write_manifest(staging)
        os.replace(staging, entry)
    return entry


def copy_out(entry: Path, target: Path) -> None:
    """Copy a cache entry's files (not its manifest) to `target`, which appears whole."""
    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(entry, staging, ignore=shutil.ignore_patterns(MANIFEST))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def key_of(*parts: str) -> str:
    """A short stable digest of what an entry depends on (version, patches, build files)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
