"""`hub up` as a real process for end-to-end tests: isolated ports, topics and database."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from hub.demo.payloads import WebhookRequest
from hub.demo.platform_apis import PlatformApis, serving
from hub.tokens import mint_token
from hubcore.settings import Settings
from tests.local_servers import free_port
from tests.resources import TEST_JWT_SECRET, SessionResources, security_env

START_TIMEOUT = 150.0


@dataclass
class RunningHub:
    """A `hub up` process and how to reach it."""

    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def connectors(self) -> str:
        return f"http://127.0.0.1:{self.settings.connectors_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.gateway_port}/ws"

    def token(self, user: str) -> str:
        return mint_token(self.settings, user, timedelta(hours=1))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def create_account(
        self, user: str, platform: str, external_id: str, credentials: dict[str, Any]
    ) -> str:
        """An account of `user` over the gateway's REST API; its id."""
        resp = httpx.post(
            f"{self.gateway}/api/accounts",
            json={"platform": platform, "externalId": external_id, "credentials": credentials},
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def post_webhook(self, request: WebhookRequest) -> httpx.Response:
        """A signed webhook (built by hub.demo.payloads) to the connectors."""
        return httpx.post(
            self.connectors + request.path,
            content=request.body,
            headers=request.headers,
            timeout=30,
        )

    def create_generic_account(self, user: str) -> tuple[str, str]:
        """A generic account for `user` over the gateway's REST API: (account id, secret)."""
        secret = uuid.uuid4().hex
        resp = httpx.post(
            f"{self.gateway}/api/accounts",
            json={
                "platform": "generic",
                "externalId": f"e2e-{user}",
                "credentials": {"secret": secret},
            },
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        assert "credentials" not in resp.json()
        return resp.json()["id"], secret

    def send_generic(self, account: str, secret: str, **fields: object) -> httpx.Response:
        """A signed generic webhook to the connectors."""
        body = orjson.dumps(
            {
                "conversationId": "support-1",
                "messageId": uuid.uuid4().hex,
                "sender": {"id": "cust-7", "name": "Ada Lovelace"},
                "text": "Where is my order?",
                "sentAt": "2026-11-25T12:00:00Z",
                "conversationTitle": "Order 42",
                **fields,
            }
        )
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(
            f"{self.connectors}/webhooks/generic/{account}",
            content=body,
            timeout=30,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )


@contextmanager
def stand_ins_in_thread(apis: PlatformApis) -> Iterator[str]:
    """The platform stand-ins served from a thread of their own (for sync fixtures such as
    `hub_up`'s); yields their base URL."""
    loop = asyncio.new_event_loop()
    ready: Future[str] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serving(apis) as url:
                ready.set_result(url)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def hub_up(
    resources: SessionResources,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[RunningHub]:
    """Start `hub up [args]` (`extra_env` added to its environment), wait until connectors
    and gateway are healthy; stop it with Ctrl-C (SIGINT) at the end and check it stopped
    cleanly."""
    isolated = resources.settings()
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": isolated.kafka_bootstrap,
        "HUB_MONGO_URL": isolated.mongo_url,
        "HUB_MONGO_DB": isolated.mongo_db,
        "HUB_TOPIC_NAMESPACE": isolated.topic_namespace,
        "HUB_TOPIC_PARTITIONS": "3",
        "HUB_JWT_SECRET": TEST_JWT_SECRET,
        **security_env(isolated),
        "HUB_GATEWAY_PORT": str(free_port()),
        "HUB_CONNECTORS_PORT": str(free_port()),
        "HUB_STREAMS_WEB_PORT": str(free_port()),
        "HUB_DATA_DIR": str(workdir / "data"),
        "HUB_LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    fields: dict[str, Any] = {
        key[4:].lower(): value
        for key, value in env.items()
        if key.startswith("HUB_") and key[4:].lower() in Settings.model_fields
    }
    settings = Settings(_env_file=None, **fields)
    log = workdir / "hub-up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "up", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    hub = RunningHub(settings, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (_healthy(f"{hub.connectors}/health") and _healthy(f"{hub.gateway}/health")):
            assert proc.poll() is None, f"hub up exited early:\n{hub.log_tail()}"
            assert time.monotonic() < deadline, f"hub up not healthy in time:\n{hub.log_tail()}"
            time.sleep(0.5)
        yield hub
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, f"hub up did not stop cleanly:\n{hub.log_tail()}"
