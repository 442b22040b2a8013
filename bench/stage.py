"""One scenario's own topic namespace, database, secrets and child environment; cleaned after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from hub.tokens import mint_token
from hubcore.accounts import Account, AccountStore
from hubcore.mongo import create_client, database
from hubcore.sealing import new_key
from hubcore.settings import Settings

JWT_SECRET = "hub-bench-jwt-secret-" + "x" * 32  # local, short-lived processes only
WEBHOOK_SECRET = "hub-bench-webhook-secret"  # noqa: S105 - generic accounts of a bench run


# Benchmarks measure throughput: the limiters still run, but never refuse.
_RATES = ("rate_ws_per_user", "rate_ws_per_ip", "rate_rest_per_user", "rate_webhooks_per_account")
BENCH_RATES: dict[str, Any] = {
    **dict.fromkeys(_RATES, "100000000/s"),
    # P5 holds 5,000 sockets of one user on one gateway.
    "ws_max_per_user": 10_000,
}


@dataclass(frozen=True)
class Stage:
    """Settings of one scenario: the shared servers, a fresh namespace and database."""

    settings: Settings
    extra_databases: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, base: Settings, label: str) -> Stage:
        """Settings on `base`'s servers with a namespace and database of their own."""
        tag = f"{label.lower()}_{uuid.uuid4().hex[:8]}"
        return cls(
            Settings(
                _env_file=None,
                kafka_bootstrap=base.kafka_bootstrap,
                mongo_url=base.mongo_url,
                mongo_db=f"bench_{tag}",
                topic_namespace=f"bench.{tag}",
                topic_partitions=base.topic_partitions,
                topic_replication=base.topic_replication,
                jwt_secret=SecretStr(JWT_SECRET),
                host="127.0.0.1",
                development=True,
                credentials_key=SecretStr(new_key()),
                **BENCH_RATES,
            )
        )

    def database(self, suffix: str) -> str:
        """The name of another database of this stage (`<db>_<suffix>`), dropped with it."""
        name = f"{self.settings.mongo_db}_{suffix}"
        self.extra_databases.append(name)
        return name

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a hub child process: no inherited `HUB_*`, these settings, `extra`."""
        s = self.settings
        assert s.jwt_secret is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            {
                "HUB_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
                "HUB_MONGO_URL": s.mongo_url,
                "HUB_MONGO_DB": s.mongo_db,
                "HUB_TOPIC_NAMESPACE": s.topic_namespace,
                "HUB_TOPIC_PARTITIONS": str(s.topic_partitions),
                "HUB_TOPIC_REPLICATION": str(s.topic_replication),
                "HUB_JWT_SECRET": s.jwt_secret.get_secret_value(),
                "HUB_HOST": "127.0.0.1",
                "HUB_DEVELOPMENT": "true",
                "HUB_CREDENTIALS_KEY": s.require_credentials_key().get_secret_value(),
                **{f"HUB_{k.upper()}": str(v) for k, v in BENCH_RATES.items()},
                # The hub's default level, as JSON lines: logging costs what it costs.
                "HUB_LOG_FORMAT": "json",
                "HUB_LOG_LEVEL": "info",
                **extra,
            }
        )
        return env

    def token(self, user_id: str) -> str:
        """A JWT of `user_id` valid for an hour."""
        return mint_token(self.settings, user_id, timedelta(hours=1))

    async def generic_accounts(self, users: list[str]) -> list[Account]:
        """One generic webhook account per user, signed with `WEBHOOK_SECRET`."""
        client = create_client(self.settings.mongo_url)
        try:
            store = AccountStore(database(client, self.settings), self.settings)
            return [
                await store.create(user, "generic", f"bench-{user}", {"secret": WEBHOOK_SECRET})
                for user in users
            ]
        finally:
            await client.close()

    async def cleanup(self) -> None:
        """Drop the databases and delete every topic of the namespace (best effort)."""
        client = create_client(self.settings.mongo_url)
        try:
            # By name: FerretDB's listDatabases can stall while other databases are busy.
            for name in (self.settings.mongo_db, *self.extra_databases):
                await client.drop_database(name)
        finally:
            await client.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            await admin.start()
            prefix = self.settings.topic_namespace + "."
            ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


@contextlib.asynccontextmanager
async def stage(base: Settings, label: str) -> AsyncIterator[Stage]:
    """A fresh stage, cleaned up afterwards whatever happened."""
    current = Stage.fresh(base, label)
    try:
        yield current
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(60):  # a stuck store must not hang the run
                await current.cleanup()
