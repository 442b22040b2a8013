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

from hub.demo.platform_apis import PlatformApis, StatusReporter, api_bases, serving
from hub.demo.seed import demo_user_ids, ensure_demo_accounts, sending_credentials
from hub.demo.simulate import simulate
from hub.provision.services import resolve_path
from hub.supervisor import Child, Supervisor, hub_argv
from hub.tokens import mint_token
from hubcore.mongo import create_client, database
from hubcore.sealing import new_key
from hubcore.settings import Settings
from hubcore.webpush import new_vapid_key

DEV_JWT_SECRET = "dev-jwt-secret"  # noqa: S105 - a file name
DEV_CREDENTIALS_KEY = "dev-credentials-key"
DEV_VAPID_KEY = "dev-vapid-key"


def _dev_path(settings: Settings, name: str) -> Path:
    path: Path = resolve_path(settings.services_dir) / name
    return path


def _dev_file(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A development secret kept under the services folder, so it survives restarts."""
    path = _dev_path(settings, name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_text(make())
    return path.read_text().strip()


def dev_jwt_secret(settings: Settings) -> str:
    """The development JWT secret (tokens survive restarts)."""
    return _dev_file(settings, DEV_JWT_SECRET, lambda: secrets.token_urlsafe(48))


def dev_credentials_key(settings: Settings) -> str:
    """The development credentials key (sealed demo accounts stay readable)."""
    return _dev_file(settings, DEV_CREDENTIALS_KEY, new_key)


def dev_vapid_key(settings: Settings) -> str:
    """The development VAPID key (browsers' push subscriptions stay valid)."""
    return _dev_file(settings, DEV_VAPID_KEY, new_vapid_key)


def local_settings(
    settings: Settings, *, demo: bool = False, create: bool = True
) -> tuple[Settings, dict[str, str]]:
    """The settings `hub up` runs its processes with, and the environment that gives them
    those: the development secret and credentials key under HUB_SERVICES_DIR when none is
    configured, and development mode (no audience or issuer) on a generated secret.
    With `create=False` (`hub token`) nothing is written: a missing file stays missing."""
    env: dict[str, str] = {}
    update: dict[str, object] = {}
    keyless = settings.jwt_secret is None and settings.jwt_public_key_file is None
    if keyless and (create or _dev_path(settings, DEV_JWT_SECRET).exists()):
        secret = dev_jwt_secret(settings)
        env["HUB_JWT_SECRET"] = secret
        update["jwt_secret"] = SecretStr(secret)
    if settings.credentials_key is None and create:
        key = dev_credentials_key(settings)
        env["HUB_CREDENTIALS_KEY"] = key
        update["credentials_key"] = SecretStr(key)
    if settings.vapid_private_key is None and create:
        vapid = dev_vapid_key(settings)
        env["HUB_VAPID_PRIVATE_KEY"] = vapid
        update["vapid_private_key"] = SecretStr(vapid)
    if (demo or "jwt_secret" in update) and not settings.development:
        # A local run on generated secrets: tokens need no audience or issuer.
        env["HUB_DEVELOPMENT"] = "true"
        update["development"] = True
    return settings.model_copy(update=update), env


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


async def run_demo(
    settings: Settings,
    sup: Supervisor,
    apis: PlatformApis | None = None,
    apis_url: str | None = None,
    users: int = 2,
    rate: float = 0.5,
) -> None:
    """Seed demo users, print their tokens and URLs, then send gentle traffic forever.
    With the platform stand-ins (`apis` at `apis_url`) the demo accounts can reply."""
    host = _local(settings.host)
    connectors = f"http://{host}:{settings.connectors_port}"
    gateway = f"http://{host}:{settings.gateway_port}"

    def say(line: str) -> None:
        sup.say("demo", line)

    if not (await wait_http(f"{connectors}/health") and await wait_http(f"{gateway}/health")):
        say("connectors or gateway did not become healthy; no demo traffic")
        return
    sending = sending_credentials(f"{apis_url}/callback" if apis_url else None)
    client = create_client(settings.mongo_url)
    try:
        accounts = await ensure_demo_accounts(
            database(client, settings), settings, demo_user_ids(users), sending
        )
    finally:
        await client.close()
    if apis is not None:
        for account in accounts:
            if account.platform == "whatsapp":
                secret = account.credentials["appSecret"]
                reporter = StatusReporter(connectors, account.id, account.external_id, secret)
                apis.report_statuses(account.external_id, reporter)
        say(f"platform API stand-ins at {apis_url}: replies from the page are sent there")
    say("demo users (tokens valid 24 h):")
    for user in demo_user_ids(users):
        token = mint_token(settings, user, timedelta(hours=24))
        # A fragment, not a query: browsers never send it, so no access log records it.
        say(f"  {user}: open {gateway}/#token={token}")
        say(f"  {user}: token {token}")
    say(f"sending demo webhooks at {rate}/s to {connectors} (Ctrl-C stops everything)")
    while True:
        summary = await simulate(connectors, accounts, rate=rate, duration=60, files_url=apis_url)
        say(summary.line())


def up(settings: Settings, *, demo: bool, say: Callable[[str], None] = print) -> int:
    """Run the hub in the foreground until Ctrl-C; returns the exit code."""
    settings, env = local_settings(settings, demo=demo)
    for variable, name in (
        ("HUB_JWT_SECRET", DEV_JWT_SECRET),
        ("HUB_CREDENTIALS_KEY", DEV_CREDENTIALS_KEY),
        ("HUB_VAPID_PRIVATE_KEY", DEV_VAPID_KEY),
    ):
        if variable in env:
            say(f"{variable} unset: using {_dev_path(settings, name)} (generated once, kept)")
    return asyncio.run(_run(settings, env, demo=demo))


def _supervisor(env: dict[str, str]) -> Supervisor:
    return Supervisor(
        [
            Child("connectors", hub_argv("connectors"), env),
            Child("streams", hub_argv("streams"), env),
            Child("gateway", hub_argv("gateway"), env),
        ]
    )


async def _run(settings: Settings, env: dict[str, str], *, demo: bool) -> int:
    if not demo:
        return await _supervisor(env).run()
    # The demo's replies go to local stand-ins of the platform APIs (loopback only),
    # served here before the processes start so their settings can name them.
    apis = PlatformApis(any_token=True)
    async with serving(apis) as url:
        allowed = [*settings.outbound_allowed_hosts, "127.0.0.1"]  # the generic callback
        env = {
            **env,
            **api_bases(url),
            "HUB_OUTBOUND_ALLOWED_HOSTS": ",".join(allowed),
            "HUB_OUTBOUND_ALLOW_PLAINTEXT": "true",
        }
        settings = settings.model_copy(
            update={"outbound_allowed_hosts": allowed, "outbound_allow_plaintext": True}
        )
        sup = _supervisor(env)
        return await sup.run(lambda: run_demo(settings, sup, apis, url))
