"""The names a test session creates on the shared servers, and their removal at its end.

Every test gets a topic namespace and a database of its own; left behind, they pile up on
a developer's broker (thousands of partitions make a broker restart slow) and store.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from hubcore.mongo import Document
from hubcore.sealing import new_key
from hubcore.settings import Settings

TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_JWT_AUDIENCE = "hub-tests"
TEST_JWT_ISSUER = "https://issuer.hub-tests.invalid"
TEST_CREDENTIALS_KEY = new_key()  # per session: nothing sealed outlives it


def security_env(settings: Settings) -> dict[str, str]:
    """The `HUB_*` variables of `settings`' token, credential and rate-limit policy, for a
    hub child process."""
    env = {
        "HUB_DEVELOPMENT": str(settings.development).lower(),
        "HUB_JWT_MAX_LIFETIME": str(settings.jwt_max_lifetime),
        "HUB_OUTBOUND_ALLOWED_HOSTS": ",".join(settings.outbound_allowed_hosts),
        "HUB_OUTBOUND_ALLOW_PLAINTEXT": str(settings.outbound_allow_plaintext).lower(),
    }
    for name in ("jwt_audience", "jwt_issuer"):
        if value := getattr(settings, name):
            env[f"HUB_{name.upper()}"] = value
    if settings.credentials_key is not None:
        env["HUB_CREDENTIALS_KEY"] = settings.credentials_key.get_secret_value()
    for name in Settings.model_fields:
        if name.startswith("rate_"):
            env[f"HUB_{name.upper()}"] = getattr(settings, name)
    return env


def unique(prefix: str) -> str:
    """A name no earlier run used, so reruns on the same servers never collide."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass
class SessionResources:
    """Hands out isolated settings and remembers what they name, to remove it later."""

    kafka_bootstrap: str
    mongo_url: str
    databases: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)

    def settings(self, **overrides: Any) -> Settings:
        """Settings for the test servers with a fresh topic namespace and database."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.kafka_bootstrap,
            "mongo_url": self.mongo_url,
            "mongo_db": unique("t_"),
            "topic_namespace": unique("t."),
            "topic_partitions": 3,
            "jwt_secret": TEST_JWT_SECRET,
            "jwt_audience": TEST_JWT_AUDIENCE,
            "jwt_issuer": TEST_JWT_ISSUER,
            "credentials_key": TEST_CREDENTIALS_KEY,
            "_env_file": None,
        }
        values.update(overrides)
        self.databases.add(str(values["mongo_db"]))
        self.namespaces.add(str(values["topic_namespace"]))
        return Settings(**values)

    def remove_all(self) -> None:
        """Drop the databases and delete the topics (and Faust's) of every namespace."""
        client: MongoClient[Document] = MongoClient(self.mongo_url, serverSelectionTimeoutMS=5000)
        try:
            for name in sorted(self.databases & set(client.list_database_names())):
                client.drop_database(name)
        finally:
            client.close()
        asyncio.run(self._delete_topics())

    async def _delete_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        await admin.start()
        try:
            prefixes = tuple(f"{ns}." for ns in self.namespaces)
            doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
            for start in range(0, len(doomed), 200):
                await admin.delete_topics(doomed[start : start + 200], timeout_ms=30000)
        finally:
            await admin.close()
