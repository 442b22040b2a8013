"""REST: the caller's webhook endpoints, their delivery log, replay and a test ping
(docs/webhooks.md). Another user's endpoint is not found, like any id that is not theirs."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import Field, model_validator

from gateway.api.deps import RuntimeDep, UserId
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.frames import Cursor
from gateway.runtime import Runtime
from gateway.webhook_replay import replay
from hubcore.kafka import partition_for
from hubcore.webhooks import (
    MAX_URL,
    DeliveryView,
    Webhook,
    WebhookView,
    WebhookWithSecret,
    delivery_id,
    new_delivery,
)
from schemas.base import HubModel, format_utc, utc_now
from schemas.events import EventType

router = APIRouter(prefix="/api", tags=["webhooks"])

WebhookIdPath = Annotated[str, Path(max_length=64)]
Url = Annotated[str, Field(min_length=8, max_length=MAX_URL, pattern=r"^https?://")]
Events = Annotated[list[EventType], Field(min_length=1, max_length=32)]
Description = Annotated[str, Field(max_length=500)]


class TooManyWebhooks(Conflict):
    code = "too_many_webhooks"


class NewWebhook(HubModel):
    """`POST /api/webhooks`: where to send which events (names as on `/ws`)."""

    url: Url
    events: Events
    description: Description = ""


class WebhookChanges(HubModel):
    """`PATCH /api/webhooks/{id}`: the fields to change; `paused: false` also re-enables an
    endpoint the hub disabled."""

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    paused: bool | None = None


class WebhookList(HubModel):
    webhooks: list[WebhookView]


class DeliveryPage(HubModel):
    """Newest first; pass `nextCursor` as `before` for older ones (null: no more)."""

    deliveries: list[DeliveryView]
    next_cursor: int | None = None


class ReplayFrom(HubModel):
    """`POST /api/webhooks/{id}/replay`: `from` an ISO 8601 time, or `cursor` an event's
    cursor (as on `/ws`; that event included), up to the newest event now."""

    from_: datetime | None = Field(default=None, alias="from")
    cursor: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _one(self) -> ReplayFrom:
        if (self.from_ is None) == (self.cursor is None):
            raise ValueError("give one of `from` (ISO 8601 time) or `cursor`")
        if self.from_ is not None and self.from_.tzinfo is None:
            raise ValueError("`from` needs a time zone (e.g. 2026-12-07T10:00:00Z)")
        return self


class ReplayAccepted(HubModel):
    """202: how many deliveries were scheduled, the first and last event's cursor, and
    whether `HUB_WEBHOOK_REPLAY_MAX` cut the range short (replay again from `lastCursor`)."""

    scheduled: int
    first_cursor: str | None
    last_cursor: str | None
    truncated: bool


class PingAccepted(HubModel):
    """202: the ping's delivery id; its outcome shows in the delivery log."""

    id: str


def _partitions(runtime: Runtime) -> list[int]:
    """hub.user-events' partitions, as the pump found them (the setting until it has)."""
    return runtime.pump.partitions or list(range(runtime.settings.topic_partitions))


def _user_partition(runtime: Runtime, user_id: str) -> int:
    partitions = _partitions(runtime)
    return partition_for(user_id.encode(), partitions, partitions)


async def _own(runtime: RuntimeDep, user_id: str, webhook_id: str) -> Webhook:
    webhook = await runtime.webhooks.get(webhook_id, user_id)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    return webhook


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret)
async def create_webhook(user_id: UserId, runtime: RuntimeDep, body: NewWebhook) -> Any:
    """Register an endpoint; the answer's `secret` (`whsec_...`) is shown this once. 422
    naming `url` when the outbound policy refuses it, 409 over `HUB_WEBHOOKS_MAX_PER_USER`."""
    most = runtime.settings.webhooks_max_per_user
    # Checked before the insert: concurrent creations may pass it together, a few at most.
    if await runtime.webhooks.count(user_id) >= most:
        raise TooManyWebhooks(
            f"this user has {most} webhooks, the most allowed (HUB_WEBHOOKS_MAX_PER_USER)"
        )
    webhook, secret = await runtime.webhooks.create(
        user_id, body.url, list(body.events), body.description
    )
    return WebhookWithSecret(**webhook.view().model_dump(), secret=secret)


@router.get("/webhooks", response_model=WebhookList)
async def list_webhooks(user_id: UserId, runtime: RuntimeDep) -> WebhookList:
    """The caller's endpoints, oldest first; secrets are never returned."""
    return WebhookList(webhooks=[w.view() for w in await runtime.webhooks.of_user(user_id)])


@router.get("/webhooks/{webhook_id}", response_model=WebhookView)
async def get_webhook(user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath) -> Any:
    return (await _own(runtime, user_id, webhook_id)).view()


@router.patch("/webhooks/{webhook_id}", response_model=WebhookView)
async def update_webhook(
    user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath, body: WebhookChanges
) -> Any:
    changes = body.model_dump(by_alias=True, exclude_none=True)
    if not changes:
        raise BadRequest("name at least one of url, events, description, paused")
    webhook = await runtime.webhooks.update(user_id, webhook_id, changes)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    if changes.get("paused") is False:  # resumed: its pending deliveries go out again
        await runtime.webhooks.wake(webhook.id, _user_partition(runtime, user_id))
    return webhook.view()


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(
    user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath
) -> Response:
    """Remove an endpoint and its delivery log; pending deliveries are dropped."""
    if not await runtime.webhooks.delete(user_id, webhook_id):
        raise NotFound(f"no webhook {webhook_id!r}")
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookWithSecret)
async def rotate_secret(user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath) -> Any:
    """A new secret, shown this once; the previous one keeps signing beside it (two
    `v1,...` signatures) for `HUB_WEBHOOK_SECRET_GRACE` seconds."""
    rotated = await runtime.webhooks.rotate(user_id, webhook_id)
    if rotated is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    webhook, secret = rotated
    return WebhookWithSecret(**webhook.view().model_dump(), secret=secret)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    user_id: UserId,
    runtime: RuntimeDep,
    webhook_id: WebhookIdPath,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: Annotated[int | None, Query(ge=-1)] = None,
) -> DeliveryPage:
    """The delivery log, newest event first: attempts, their status codes and latencies,
    the next attempt of a pending one."""
    await _own(runtime, user_id, webhook_id)
    page = await runtime.webhooks.delivery_page(webhook_id, limit, before)
    more = len(page) == limit
    return DeliveryPage(deliveries=page, next_cursor=page[-1].seq if more and page else None)


@router.post("/webhooks/{webhook_id}/replay", status_code=202, response_model=ReplayAccepted)
async def replay_webhook(
    user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath, body: ReplayFrom
) -> ReplayAccepted:
    """Send the endpoint's subscribed events again from Kafka's history (within the
    topic's retention), in order, with the `webhook-id`s they had the first time."""
    webhook = await _own(runtime, user_id, webhook_id)
    if body.cursor is not None:
        cursor = Cursor.parse(body.cursor)
        result = await replay(
            runtime.webhooks,
            webhook,
            _partitions(runtime),
            from_offset=cursor.offset,
            partition=cursor.partition,
        )
    else:
        result = await replay(runtime.webhooks, webhook, _partitions(runtime), since=body.from_)
    return ReplayAccepted(
        scheduled=result.scheduled,
        first_cursor=result.first_cursor,
        last_cursor=result.last_cursor,
        truncated=result.truncated,
    )


@router.post("/webhooks/{webhook_id}/test", status_code=202, response_model=PingAccepted)
async def ping_webhook(user_id: UserId, runtime: RuntimeDep, webhook_id: WebhookIdPath) -> Any:
    """Send a signed `ping` event ahead of the endpoint's queue (one attempt, no retry)."""
    webhook = await _own(runtime, user_id, webhook_id)
    ping_id = "ping_" + secrets.token_urlsafe(12)
    now = utc_now()
    body = {
        "type": "ping",
        "id": ping_id,
        "cursor": None,
        "occurredAt": format_utc(now),
        "data": {"webhookId": webhook.id},
    }
    # The process that owns the user's events sends it, in the endpoint's worker; seq -1
    # puts it ahead of what the endpoint's queue reads from the store.
    doc = new_delivery(
        delivery_id("ping", 0, 0, ping_id),
        webhook.id,
        user_id,
        _user_partition(runtime, user_id),
        -1,
        "ping",
        ping_id,
        None,
        orjson.dumps(body).decode(),
        ping=True,
    )
    await runtime.webhooks.deliveries.insert_one(doc)
    await runtime.webhooks.wake(webhook.id, doc["partition"])
    return PingAccepted(id=doc["_id"])
