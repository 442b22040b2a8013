"""The machine's provisioning cache: entries built once, checked by checksum, rebuilt when
damaged, copied out whole; the lock makes concurrent builders take turns."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

from hub.provision.cache import cached_entry, copy_out, file_lock, verified


def _build_counting(log: Path) -> Callable[[Path], None]:
    def build(entry: Path) -> None:
        with log.open("a") as fh:
            fh.write("built\n")
        (entry / "bin").mkdir()
        (entry / "bin" / "tool").write_bytes(b"\x7fELF fake")
        (entry / "bin" / "tool").chmod(0o755)
        (entry / "data.jar").write_bytes(b"jar")

    return build


def test_entry_is_built_once_then_served_from_cache(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    build = _build_counting(log)
    first = cached_entry(tmp_path / "cache", "tool", "v1-abc", build)
    again = cached_entry(tmp_path / "cache", "tool", "v1-abc", build)
    assert first == again == tmp_path / "cache" / "tool" / "v1-abc"
    assert log.read_text() == "built\n"
    assert verified(first)
    other = cached_entry(tmp_path / "cache", "tool", "v2-def", build)
    assert other != first and log.read_text() == "built\nbuilt\n"


def test_damaged_or_extra_files_make_it_build_again(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    build = _build_counting(log)
    entry = cached_entry(tmp_path / "cache", "tool", "k", build)
    (entry / "data.jar").write_bytes(b"tampered")
    assert not verified(entry)
    entry = cached_entry(tmp_path / "cache", "tool", "k", build)
    assert (entry / "data.jar").read_bytes() == b"jar"
    (entry / "planted.jar").write_bytes(b"x")
    assert not verified(entry)
    (entry / "planted.jar").unlink()
    (entry / "SHA256SUMS").unlink()
    assert not verified(entry)
    cached_entry(tmp_path / "cache", "tool", "k", build)
    assert log.read_text().count("built") == 3


def test_copy_out_keeps_modes_and_leaves_the_manifest(tmp_path: Path) -> None:
    build = _build_counting(tmp_path / "log")
    entry = cached_entry(tmp_path / "cache", "tool", "k", build)
    target = tmp_path / "home" / "tool" / "libs"
    target.mkdir(parents=True)
    (target / "old.jar").write_bytes(b"old")
    copy_out(entry, target)
    assert sorted(p.name for p in target.rglob("*")) == ["bin", "data.jar", "tool"]
    assert os.access(target / "bin" / "tool", os.X_OK)
    assert not list(target.parent.glob(".*partial"))


def _hold(path: str, seconds: float) -> None:
    with file_lock(Path(path)):
        Path(path + ".held").touch()
        time.sleep(seconds)
        with Path(path + ".log").open("a") as log:
            log.write("holder out\n")


def test_file_lock_makes_another_process_wait(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(str(lock), 1.5))
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{lock}.held").exists():
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.02)
        with file_lock(lock), Path(f"{lock}.log").open("a") as log:
            log.write("other in\n")
        # The order the two wrote in, not a measured wait: a lock that let the other in
        # at once shows as "other in" first, however loaded the machine.
        assert Path(f"{lock}.log").read_text().split() == ["holder", "out", "other", "in"]
    finally:
        holder.join(10)
