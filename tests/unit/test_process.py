"""Background processes: started detached, remembered by pid file, stopped by pid only."""

from __future__ import annotations

import sys
from pathlib import Path

from hub.provision.process import ManagedProcess, pid_alive


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
    pid = int(proc.pid_file.read_text().split()[0])
    import os

    os.waitpid(pid, 0)
    assert proc.pid() is None
    assert not proc.pid_file.exists()
