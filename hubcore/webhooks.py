"""Webhook endpoints of users and their deliveries: one store shared by the gateway (REST)
and the connectors (delivery), and the Standard Webhooks signature.

Endpoints live in `webhooks`, their signing secrets sealed like account credentials
(`sealing`). Deliveries live in `webhook_deliveries`: one document per event and endpoint,
keyed by its `webhook-id` (derived from the event's topic, partition and offset and the
endpoint, so it stays the same across retries, restarts and replays). That collection is
both the delivery log and the durable retry state: a delivery is `pending` until
`delivered` or `dead`, and whoever owns the event's partition sends it (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

import orjson
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.errors import InvalidField
from hubcore.mongo import Document
from hubcore.outbound import OutboundPolicy, Resolver
from hubcore.retry import Backoff
from hubcore.sealing import CredentialCipher
from hubcore.settings import Settings
from schemas.base import HubModel, UtcDatetime, utc_now
from schemas.events import EventType

if TYPE_CHECKING:
    from schemas.frames import Event

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"
# Notes from the gateway to the deliveries' owner: an endpoint has deliveries its queue in
# memory may not (replay, ping, resume).
WAKEUPS = "webhook_wakeups"

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
SECRET_PREFIX = "whsec_"  # noqa: S105 - the form's prefix, not a secret
SECRET_BYTES = 32
MAX_URL = 2048
# Attempts kept per delivery in the log (the newest ones): what a user inspects.
LOGGED_ATTEMPTS = 10

DeliveryState = Literal["pending", "delivered", "dead"]
# Why an attempt failed: a closed set, so it can label metrics.
FailureReason = Literal[
    "connect", "timeout", "refused_address", "http_3xx", "http_4xx", "http_429", "http_5xx"
]
FAILURE_REASONS: tuple[str, ...] = get_args(FailureReason)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` + base64 of 32 bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per secret, space-separated (the
    spec's form for rotation: a receiver accepts the request if any one matches)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def retry_schedule(settings: Settings) -> Backoff:
    """Waits between a delivery's attempts: doubling from the first, capped, jittered."""
    return Backoff(
        attempts=settings.webhook_attempts,
        first=settings.webhook_backoff_first,
        factor=2.0,
        max_delay=settings.webhook_backoff_max,
    )


def delivery_id(topic: str, partition: int, offset: int, webhook_id: str) -> str:
    """The `webhook-id` of one event to one endpoint: the same on every attempt."""
    digest = hashlib.sha256(f"{topic}\0{partition}\0{offset}\0{webhook_id}".encode()).hexdigest()
    return "msg_" + digest[:32]


class WebhookView(HubModel):
    """An endpoint as the API shows it: never with its secret (only `Created` has it)."""

    id: str
    url: str
    events: list[EventType]
    description: str
    paused: bool
    disabled_reason: str | None = Field(
        default=None, description="Set when the hub stopped delivering after sustained failure."
    )
    disabled_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class WebhookWithSecret(WebhookView):
    """Answer of create and rotate-secret: the new secret, shown this once."""

    secret: str


class Webhook(WebhookView):
    """An endpoint with the secrets it signs with now (newest first)."""

    user_id: str
    signing_secrets: list[str] = Field(repr=False)

    @property
    def active(self) -> bool:
        return not self.paused and self.disabled_reason is None

    def view(self) -> WebhookView:
        return WebhookView.model_validate(self.model_dump(include=set(WebhookView.model_fields)))


class Attempt(HubModel):
    at: UtcDatetime
    status: int | None = None
    latency_ms: float
    error: FailureReason | None = None


class DeliveryView(HubModel):
    """One event's delivery to one endpoint, as the log shows it."""

    id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    event_type: str
    event_id: str
    cursor: str | None = None
    seq: int = Field(description="The event's offset: the log's order (`before` pages on).")
    state: DeliveryState
    attempts: int
    last_attempts: list[Attempt] = []
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None = None


class WebhookStore:
    """Endpoints CRUD (sealed secrets, URL policy) and the delivery documents."""

    def __init__(
        self, db: AsyncDatabase[Document], settings: Settings, *, resolver: Resolver | None = None
    ) -> None:
        self.settings = settings
        self.webhooks = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]
        self.wakeups = db[WAKEUPS]
        self.cipher = CredentialCipher.from_settings(settings)
        self.policy = OutboundPolicy.from_settings(settings, resolver)

    async def ensure_indexes(self) -> None:
        await self.webhooks.create_index([("userId", ASCENDING)])
        # The delivery worker's head-of-line query and the log's newest-first page.
        await self.deliveries.create_index(
            [("webhookId", ASCENDING), ("state", ASCENDING), ("seq", ASCENDING)]
        )
        await self.deliveries.create_index([("webhookId", ASCENDING), ("seq", DESCENDING)])
        await self.deliveries.create_index([("state", ASCENDING), ("nextAttemptAt", ASCENDING)])

    async def check_url(self, url: str, field: str = "url") -> None:
        """The outbound policy for a user's URL: `AddressRefused` naming `field`."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not one
        except ValueError as exc:
            raise InvalidField(field, f"is not a URL ({exc})") from None
        if parts.username is not None or parts.password is not None:
            raise InvalidField(field, "must not carry credentials (sign with the secret)")
        await asyncio.to_thread(self.policy.url_address, url, field)

    # --- endpoints ----------------------------------------------------------------------
    async def create(
        self, user_id: str, url: str, events: list[str], description: str
    ) -> tuple[Webhook, str]:
        await self.check_url(url)
        secret = new_secret()
        now = utc_now()
        webhook = Webhook(
            id="wh_" + secrets.token_urlsafe(12),
            user_id=user_id,
            url=url,
            events=sorted(set(events)),
            description=description,
            paused=False,
            created_at=now,
            updated_at=now,
            signing_secrets=[secret],
        )
        doc = webhook.model_dump(by_alias=True, exclude={"signing_secrets", "id"})
        doc |= {"_id": webhook.id, "sealedSecrets": self._seal([(secret, None)])}
        await self.webhooks.insert_one(doc)
        return webhook, secret

    async def count(self, user_id: str) -> int:
        return await self.webhooks.count_documents({"userId": user_id})

    async def get(self, webhook_id: str, user_id: str | None = None) -> Webhook | None:
        query: dict[str, Any] = {"_id": webhook_id}
        if user_id is not None:
            query["userId"] = user_id
        doc = await self.webhooks.find_one(query)
        return self._from_doc(doc) if doc else None

    async def of_user(self, user_id: str | None = None) -> list[Webhook]:
        query = {} if user_id is None else {"userId": user_id}
        return [self._from_doc(d) async for d in self.webhooks.find(query).sort("createdAt", 1)]

    async def for_users(self, user_ids: set[str]) -> dict[str, list[Webhook]]:
        """Active endpoints of these users, in one read."""
        found: dict[str, list[Webhook]] = {}
        query = {"userId": {"$in": sorted(user_ids)}, "paused": False, "disabledReason": None}
        async for doc in self.webhooks.find(query):
            webhook = self._from_doc(doc)
            found.setdefault(webhook.user_id, []).append(webhook)
        return found

    async def update(
        self, user_id: str, webhook_id: str, changes: dict[str, Any]
    ) -> Webhook | None:
        """Apply `changes` (camelCase fields); resuming (`paused: false`) also clears a
        disabling, so the pending deliveries go out again."""
        if "url" in changes:
            await self.check_url(changes["url"])
        if "events" in changes:
            changes["events"] = sorted(set(changes["events"]))
        if changes.get("paused") is False:
            changes |= {"disabledReason": None, "disabledAt": None}
        changes["updatedAt"] = utc_now()
        doc = await self.webhooks.find_one_and_update(
            {"_id": webhook_id, "userId": user_id},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        return self._from_doc(doc) if doc else None

    async def rotate(self, user_id: str, webhook_id: str) -> tuple[Webhook, str] | None:
        """A new secret; the newest old one keeps signing for `HUB_WEBHOOK_SECRET_GRACE`."""
        doc = await self.webhooks.find_one({"_id": webhook_id, "userId": user_id})
        if doc is None:
            return None
        secret = new_secret()
        until = utc_now() + timedelta(seconds=self.settings.webhook_secret_grace)
        current = self._open(doc)[0]
        sealed = self._seal([(secret, None), (current, until)])
        doc = await self.webhooks.find_one_and_update(
            {"_id": webhook_id, "userId": user_id},
            {"$set": {"sealedSecrets": sealed, "updatedAt": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        return (self._from_doc(doc), secret) if doc else None

    async def disable(self, webhook_id: str, reason: str) -> None:
        await self.webhooks.update_one(
            {"_id": webhook_id},
            {"$set": {"disabledReason": reason[:500], "disabledAt": utc_now()}},
        )

    async def delete(self, user_id: str, webhook_id: str) -> bool:
        result = await self.webhooks.delete_one({"_id": webhook_id, "userId": user_id})
        if result.deleted_count != 1:
            return False
        await self.deliveries.delete_many({"webhookId": webhook_id})
        return True

    # --- deliveries ---------------------------------------------------------------------
    async def wake(self, webhook_id: str, partition: int) -> None:
        """Tell whoever delivers `partition`'s events to read the endpoint's queue again."""
        await self.wakeups.insert_one(
            {"_id": secrets.token_hex(8), "webhookId": webhook_id, "partition": partition}
        )

    async def delivery_page(
        self, webhook_id: str, limit: int, before: int | None
    ) -> list[DeliveryView]:
        """Newest first (by the event's position), at most `limit`."""
        query: dict[str, Any] = {"webhookId": webhook_id}
        if before is not None:
            query["seq"] = {"$lt": before}
        cursor = self.deliveries.find(query).sort("seq", -1).limit(limit)
        return [delivery_view(doc) async for doc in cursor]

    def _seal(self, entries: list[tuple[str, datetime | None]]) -> str:
        return self.cipher.seal(
            {"secrets": [{"secret": s, "until": u.isoformat() if u else None} for s, u in entries]}
        )

    def _open(self, doc: Document) -> list[str]:
        """The secrets that sign now, newest first (expired ones left out)."""
        now = utc_now()
        opened = self.cipher.open(doc["sealedSecrets"])["secrets"]
        return [
            e["secret"]
            for e in opened
            if e["until"] is None or datetime.fromisoformat(e["until"]) > now
        ]

    def _from_doc(self, doc: Document) -> Webhook:
        fields = {k: v for k, v in doc.items() if k not in ("_id", "sealedSecrets")}
        return Webhook.model_validate(
            {**fields, "id": doc["_id"], "signingSecrets": self._open(doc)}
        )


def delivery_view(doc: Document) -> DeliveryView:
    return DeliveryView.model_validate({**doc, "id": doc["_id"]})


def new_delivery(
    delivery: str,
    webhook_id: str,
    user_id: str,
    partition: int,
    seq: int,
    event_type: str,
    event_id: str,
    cursor: str | None,
    body: str,
    **extra: Any,
) -> Document:
    """A pending delivery document: due now, no attempt made yet."""
    now = utc_now()
    return {
        "_id": delivery,
        "webhookId": webhook_id,
        "userId": user_id,
        "partition": partition,
        "seq": seq,
        "eventType": event_type,
        "eventId": event_id,
        "cursor": cursor,
        "body": body,
        "state": "pending",
        "attempts": 0,
        "lastAttempts": [],
        "nextAttemptAt": now,
        "createdAt": now,
        "deliveredAt": None,
        **extra,
    }


def pending_doc(topic: str, webhook: Webhook, event: Event) -> Document:
    """A new delivery of one event (decoded by `gateway.frames`: its body is the `/ws` frame)."""
    return new_delivery(
        delivery_id(topic, event.partition, event.offset, webhook.id),
        webhook.id,
        webhook.user_id,
        event.partition,
        event.offset,
        event.type,
        orjson.loads(event.text)["id"],
        event.cursor,
        event.text,
    )
