"""Web Push state in MongoDB, shared by the gateway (REST writes) and the notifier (reads).

push_subscriptions  {_id: sha256 of the endpoint, userId, endpoint, p256dh, auth, createdAt}
push_settings       {_id: user id, enabled, preview}  (absent: enabled, previews on)
push_mutes          {_id: "<userId>/<conversationId>", userId, conversationId, at}
presence            {_id: user id, online, devices, lastSeen, version}  (written by presence)

A subscription is one browser's: its endpoint is its identity, so the same browser
subscribing again (or for another user after a log-in) replaces the old document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document
from schemas.base import utc_now

PUSH_SUBSCRIPTIONS = "push_subscriptions"
PUSH_SETTINGS = "push_settings"
PUSH_MUTES = "push_mutes"
PRESENCE = "presence"


def endpoint_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    user_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes


@dataclass(frozen=True, slots=True)
class UserPushSettings:
    enabled: bool = True
    preview: bool = True


@dataclass(frozen=True, slots=True)
class Presence:
    """What the presence projection says of a user; absent: offline since forever."""

    online: bool = False
    last_seen: datetime | None = None


def _subscription(doc: Document) -> Subscription:
    return Subscription(doc["_id"], doc["userId"], doc["endpoint"], doc["p256dh"], doc["auth"])


class PushStore:
    """Every read and write of Web Push state; always by the caller's user id."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.subscriptions = db[PUSH_SUBSCRIPTIONS]
        self.settings = db[PUSH_SETTINGS]
        self.mutes = db[PUSH_MUTES]
        self.presence = db[PRESENCE]

    async def ensure_indexes(self) -> None:
        await self.subscriptions.create_index([("userId", ASCENDING)])
        await self.mutes.create_index([("userId", ASCENDING)])

    # --- subscriptions ------------------------------------------------------------------
    async def count(self, user_id: str) -> int:
        return await self.subscriptions.count_documents({"userId": user_id})

    async def subscribe(self, user_id: str, endpoint: str, p256dh: bytes, auth: bytes) -> bool:
        """Store (or replace) the browser's subscription; True when it was new for this user."""
        key = endpoint_id(endpoint)
        result = await self.subscriptions.replace_one(
            {"_id": key},
            {
                "userId": user_id,
                "endpoint": endpoint,
                "p256dh": p256dh,
                "auth": auth,
                "createdAt": utc_now(),
            },
            upsert=True,
        )
        return result.upserted_id is not None

    async def has_subscription(self, user_id: str, endpoint: str) -> bool:
        found = await self.subscriptions.find_one({"_id": endpoint_id(endpoint), "userId": user_id})
        return found is not None

    async def unsubscribe(self, user_id: str, endpoint: str) -> bool:
        result = await self.subscriptions.delete_one(
            {"_id": endpoint_id(endpoint), "userId": user_id}
        )
        return result.deleted_count > 0

    async def remove(self, subscription_id: str) -> None:
        """The push service said the subscription is gone (404/410)."""
        await self.subscriptions.delete_one({"_id": subscription_id})

    async def of_user(self, user_id: str, limit: int) -> list[Subscription]:
        docs = await self.subscriptions.find({"userId": user_id}).limit(limit).to_list()
        return [_subscription(d) for d in docs]

    # --- the user's switch, mutes, presence ------------------------------------------
    async def user_settings(self, user_id: str) -> UserPushSettings:
        doc = await self.settings.find_one({"_id": user_id})
        if not doc:
            return UserPushSettings()
        return UserPushSettings(bool(doc.get("enabled", True)), bool(doc.get("preview", True)))

    async def set_user_settings(self, user_id: str, value: UserPushSettings) -> None:
        await self.settings.replace_one(
            {"_id": user_id}, {"enabled": value.enabled, "preview": value.preview}, upsert=True
        )

    async def set_muted(self, user_id: str, conversation_id: str, muted: bool) -> None:
        key = f"{user_id}/{conversation_id}"
        if muted:
            doc: dict[str, Any] = {
                "userId": user_id,
                "conversationId": conversation_id,
                "at": utc_now(),
            }
            await self.mutes.replace_one({"_id": key}, doc, upsert=True)
        else:
            await self.mutes.delete_one({"_id": key})

    async def is_muted(self, user_id: str, conversation_id: str) -> bool:
        return await self.mutes.find_one({"_id": f"{user_id}/{conversation_id}"}) is not None

    async def presence_of(self, user_id: str) -> Presence:
        doc = await self.presence.find_one({"_id": user_id})
        if not doc:
            return Presence()
        return Presence(bool(doc.get("online")), _time(doc))


def _time(doc: Document) -> datetime | None:
    value = doc.get("lastSeen")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
