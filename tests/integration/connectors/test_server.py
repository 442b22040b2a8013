"""`hub accounts` and `hub connectors` as an operator runs them: real processes, real HTTP."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import ACCOUNTS, Document
from hubcore.settings import Settings
from tests import platform_payloads as p
from tests.integration.connectors.harness import (
    eventually,
    hub_env,
    killable_connectors,
    raw_messages,
)
from tests.local_servers import free_port, run_hub

pytestmark = pytest.mark.integration


def hub(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_hub(env, *args, cwd=cwd, timeout=60)


@contextmanager
def connectors_process(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`hub connectors` on a free port; at the end it must stop gracefully on SIGTERM."""
    port = free_port()
    with killable_connectors({**env, "HUB_CONNECTORS_PORT": str(port)}, cwd, "connectors") as proc:
        yield f"http://127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (cwd / "connectors.log").read_text()


async def answering(base: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            await client.get(f"{base}/health", timeout=5)
        return True
    except httpx.TransportError:
        return False


async def test_accounts_cli_and_a_real_server(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    env = hub_env(settings)
    added = hub(
        env,
        tmp_path,
        "accounts", "add", "--user", "carol", "--platform", "generic",
        "--external-id", "crm", "--credential", "secret=top-secret-value",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    account_id = added.stdout.strip()
    assert account_id.startswith("acc_") and "\n" not in account_id
    listed = hub(env, tmp_path, "accounts", "list", "--user", "carol")
    assert account_id in listed.stdout and "secret=***" in listed.stdout
    assert "top-secret-value" not in listed.stdout + listed.stderr
    bad = hub(env, tmp_path, "accounts", "add", "--user", "c", "--platform", "fax",
              "--external-id", "x")  # fmt: skip
    assert bad.returncode == 2 and "Invalid value for '--platform'" in bad.stderr
    assert bad.stdout == ""

    with connectors_process(env, tmp_path) as base:
        # A cold process start (imports, Kafka and store clients) beside CI's fault tests
        # took over 30 s once.
        await eventually(lambda: answering(base), timeout=90, what="hub connectors listens")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await eventually(lambda: _status(client, "/health", 200), timeout=30, what="healthy")
            raw = p.body(p.generic_message("real-1"))
            signed = p.hub_signature("top-secret-value", raw)
            response = await client.post(f"/webhooks/generic/{account_id}", content=raw,
                                         headers=signed)  # fmt: skip
            assert response.status_code == 200, response.text

            async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length
                for _ in range(17):
                    yield b"z" * 65536

            big = await client.post(f"/webhooks/generic/{account_id}", content=chunks())
            assert big.status_code == 413
            metrics = (await client.get("/metrics")).text
            assert 'hub_connectors_webhook_requests_total{platform="generic",status="200"} 1.0' in (
                metrics
            )
    produced = await raw_messages(settings)
    assert [(key, r.text) for key, r in produced] == [("carol", "My order has not arrived")]


async def test_starts_without_kafka_and_answers_503(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    env = hub_env(settings)
    added = hub(env, tmp_path, "accounts", "add", "--user", "dave", "--platform", "generic",
                "--external-id", "x", "--credential", "secret=s")  # fmt: skip
    account_id = added.stdout.strip()
    down = {**env, "HUB_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "HUB_KAFKA_REQUEST_TIMEOUT": "1"}  # fmt: skip
    with connectors_process(down, tmp_path) as base:
        await eventually(lambda: answering(base), timeout=30, what="starts although Kafka is down")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["services"]["kafka"] == "unavailable"
            raw = p.body(p.generic_message("m"))
            response = await client.post(
                f"/webhooks/generic/{account_id}", content=raw, headers=p.hub_signature("s", raw)
            )
            assert response.status_code == 503
            assert response.json()["error"] == "kafka_unavailable"


async def test_cli_needs_the_key_and_rotates_it(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    env = hub_env(settings)
    add = ("accounts", "add", "--user", "erin", "--platform", "generic", "--external-id", "x",
           "--credential", "secret=s3cret-value")  # fmt: skip
    no_key = hub({k: v for k, v in env.items() if k != "HUB_CREDENTIALS_KEY"}, tmp_path, *add)
    assert no_key.returncode == 2 and "HUB_CREDENTIALS_KEY: is required" in no_key.stderr
    assert hub(env, tmp_path, *add).returncode == 0
    new_key = hub(env, tmp_path, "accounts", "new-key").stdout.strip()
    both = {**env, "HUB_CREDENTIALS_KEY": f"{new_key},{env['HUB_CREDENTIALS_KEY']}"}
    rotated = hub(both, tmp_path, "accounts", "rotate-key")
    assert rotated.returncode == 0 and rotated.stdout.strip() == "re-sealed 1 accounts"
    only_new = hub({**env, "HUB_CREDENTIALS_KEY": new_key}, tmp_path, "accounts", "list")
    assert only_new.returncode == 0 and "secret=***" in only_new.stdout
    old_only = hub(env, tmp_path, "accounts", "list")
    assert old_only.returncode == 2 and "do not open" in old_only.stderr
    assert "s3cret-value" not in str([doc async for doc in mongo_db[ACCOUNTS].find({})])


async def _status(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status
