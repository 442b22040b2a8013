"""`hub up [--demo]`: local servers when needed, the three processes, and demo traffic."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from hub.demo.seed import demo_user_ids, ensure_demo_accounts
from hub.demo.simulate import simulate
from hub.provision.services import resolve_path
from hub.supervisor import Child, Supervisor, hub_argv
from hub.tokens import mint_token
from hubcore.mongo import create_client, database
from hubcore.sealing import new_key
from hubcore.settings import Settings


def _dev_file(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A development secret kept under the services folder, so it survives restarts."""
    path: Path = resolve_path(settings.services_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_text(make())
    return path.read_text().strip()


def dev_jwt_secret(settings: Settings) -> str:
    """The development JWT secret (tokens survive restarts)."""
    return _dev_file(settings, "dev-jwt-secret", lambda: secrets.token_urlsafe(48))


def dev_credentials_key(settings: Settings) -> str:
    """The development credentials key (sealed demo accounts stay readable)."""
    return _dev_file(settings, "dev-credentials-key", new_key)


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping only


async def wait_http(url: str, timeout: float = 120.0) -> bool:
    """True once `url` answers with any status below 500 (up and not degraded)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=3.0) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code < 500:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    return False


async def run_demo(settings: Settings, sup: Supervisor, users: int = 2, rate: float = 0.5) -> None:
    """Seed demo users, print their tokens and URLs, then send gentle traffic forever."""
    host = _local(settings.host)
    connectors = f"http://{host}:{settings.connectors_port}"
    gateway = f"http://{host}:{settings.gateway_port}"

    def say(line: str) -> None:
        sup.say("demo", line)

    if not (await wait_http(f"{connectors}/health") and await wait_http(f"{gateway}/health")):
        say("connectors or gateway did not become healthy; no demo traffic")
        return
    client = create_client(settings.mongo_url)
    try:
        accounts = await ensure_demo_accounts(
            database(client, settings), settings, demo_user_ids(users)
        )
    finally:
        await client.close()
    say("demo users (tokens valid 24 h):")
    for user in demo_user_ids(users):
        token = mint_token(settings, user, timedelta(hours=24))
        say(f"  {user}: open {gateway}/?token={token}")
        say(f"  {user}: token {token}")
    say(f"sending demo webhooks at {rate}/s to {connectors} (Ctrl-C stops everything)")
    while True:
        summary = await simulate(connectors, accounts, rate=rate, duration=60)
        say(summary.line())


def up(settings: Settings, *, demo: bool) -> int:
    """Run the hub in the foreground until Ctrl-C; returns the exit code."""
    env: dict[str, str] = {}
    update: dict[str, object] = {}
    if settings.jwt_secret is None and settings.jwt_public_key_file is None:
        secret = dev_jwt_secret(settings)
        env["HUB_JWT_SECRET"] = secret
        update["jwt_secret"] = SecretStr(secret)
    if settings.credentials_key is None:
        key = dev_credentials_key(settings)
        env["HUB_CREDENTIALS_KEY"] = key
        update["credentials_key"] = SecretStr(key)
    if (demo or "jwt_secret" in update) and not settings.development:
        # A local run on generated secrets: tokens need no audience or issuer.
        env["HUB_DEVELOPMENT"] = "true"
        update["development"] = True
    settings = settings.model_copy(update=update)
    children = [
        Child("connectors", hub_argv("connectors"), env),
        Child("streams", hub_argv("streams"), env),
        Child("gateway", hub_argv("gateway"), env),
    ]
    sup = Supervisor(children)
    after = (lambda: run_demo(settings, sup)) if demo else None
    return asyncio.run(sup.run(after))
