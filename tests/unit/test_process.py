"""Background processes: started detached, remembered by pid file, stopped by pid only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hub.provision.ferretdb import PATCHES, apply_patches
from hub.provision.process import ManagedProcess, ProvisionError, pid_alive


def test_start_status_stop(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path)
    assert proc.pid() is None
    pid = proc.start([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    assert proc.pid() == pid
    assert pid_alive(pid)
    assert proc.stop(timeout=5)
    assert not pid_alive(pid)
    assert proc.pid() is None
    assert not proc.stop()  # nothing left to stop


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    proc = ManagedProcess("gone", tmp_path)
    proc.start([sys.executable, "-c", "pass"])
    pid = int(proc.pid_file.read_text())
    import os

    os.waitpid(pid, 0)
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_ferretdb_patches_apply_once_and_refuse_drifted_sources(tmp_path: Path) -> None:
    files: dict[str, list[str]] = {}
    for rel, old, _new in PATCHES:
        files.setdefault(rel, []).append(old)
    for rel, olds in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("// before\n" + "// between\n".join(olds) + "// after\n")
    apply_patches(tmp_path)
    for rel, old, new in PATCHES:
        text = (tmp_path / rel).read_text()
        assert new in text and (old in new or old not in text)
    # Applying to patched (or changed upstream) sources fails with the file named.
    with pytest.raises(ProvisionError, match="no longer applies"):
        apply_patches(tmp_path)
