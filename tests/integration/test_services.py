"""`hub services`: status reports the real servers; down leaves alone what it did not start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hub.provision.services import LocalServices
from hubcore.settings import Settings
from tests.local_servers import run_hub
from tests.servers import Servers

pytestmark = pytest.mark.integration


def _hub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_hub(env, *args)


def test_status_reports_running_servers(servers: Servers) -> None:
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "HUB_MONGO_URL": servers.mongo_url,
    }
    result = _hub("services", "status", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["kafka", "running"]
    assert lines[1].split()[:2] == ["mongodb", "running"]


def test_up_is_a_no_op_and_down_spares_foreign_servers(servers: Servers, tmp_path: Path) -> None:
    # A services folder that started nothing: `up` finds both answering, `down` stops nothing.
    settings = Settings(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongo_url=servers.mongo_url,
        services_dir=tmp_path,
        _env_file=None,
    )
    local = LocalServices(settings)
    said: list[str] = []
    assert local.up(echo=said.append, timeout=10) == []  # started nothing: `hub up` stops nothing
    assert sorted(said) == [
        f"ferretdb: already running at {servers.mongo_url}",
        f"kafka: already running at {servers.kafka_bootstrap}",
    ]
    local.down(echo=said.append)
    assert said[-2:] == [
        "kafka: not started by hub, left alone",
        "ferretdb: not started by hub, left alone",
    ]
    local.down(echo=said.append, only=["ferretdb"])
    assert said[-1:] == ["ferretdb: not started by hub, left alone"]
    assert all(state.answering for state in local.status())
