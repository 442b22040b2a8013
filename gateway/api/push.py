"""REST: Web Push subscriptions, the caller's push switch and per-conversation mutes
(docs/push.md). The notifier that sends the pushes runs in the connectors process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Response
from pydantic import ConfigDict, Field, field_validator

from gateway.api.deps import RuntimeDep, UserId
from gateway.errors import Conflict, NotFound
from hubcore.outbound import OutboundPolicy
from hubcore.push_store import PushStore, UserPushSettings
from hubcore.webpush import AUTH_BYTES, Vapid, b64url_decode, load_p256_public
from schemas.base import HubModel

router = APIRouter(prefix="/api", tags=["push"])

ConversationId = Annotated[str, Path(max_length=128)]
MAX_ENDPOINT_CHARS = 2048


class TooManySubscriptions(Conflict):
    code = "too_many_subscriptions"


class PushKeys(HubModel):
    model_config = ConfigDict(extra="forbid")

    p256dh: str = Field(min_length=80, max_length=100)
    auth: str = Field(min_length=16, max_length=32)

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        load_p256_public(b64url_decode(value))  # ValueError -> 422 naming keys.p256dh
        return value

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        if len(b64url_decode(value)) != AUTH_BYTES:
            raise ValueError(f"must be {AUTH_BYTES} bytes, url-safe base64")
        return value


class PushSubscriptionBody(HubModel):
    """The browser's `PushSubscription.toJSON()`."""

    endpoint: str = Field(min_length=12, max_length=MAX_ENDPOINT_CHARS)
    expiration_time: float | None = Field(default=None, ge=0)
    keys: PushKeys

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https URL")
        if parts.username is not None or parts.fragment:
            raise ValueError("must not carry credentials or a fragment")
        return value


class EndpointBody(HubModel):
    endpoint: str = Field(min_length=1, max_length=MAX_ENDPOINT_CHARS)


class PushSettingsBody(HubModel):
    """The caller's switch: notifications at all, and with sender and text preview."""

    enabled: bool
    preview: bool


class PushConfig(HubModel):
    """What the page needs to subscribe: the VAPID public key (null: push is off)."""

    vapid_public_key: str | None
    enabled: bool
    preview: bool


class MuteBody(HubModel):
    muted: bool


class MuteState(HubModel):
    conversation_id: str
    muted: bool


@dataclass(frozen=True, slots=True)
class PushState:
    """What the routes share, built once per gateway process (on first use)."""

    store: PushStore
    policy: OutboundPolicy
    public_key: str | None


def _state(runtime: Any) -> PushState:
    state: PushState | None = getattr(runtime, "push_state", None)
    if state is None:
        vapid = Vapid.from_settings(runtime.settings)
        state = PushState(
            PushStore(runtime.db),
            OutboundPolicy.from_settings(runtime.settings),
            vapid.public_key if vapid else None,
        )
        runtime.push_state = state
    return state


@router.get("/vapid-public-key", response_model=PushConfig, response_model_by_alias=True)
async def push_config(user_id: UserId, runtime: RuntimeDep) -> PushConfig:
    """The page's push configuration: the `applicationServerKey` and the caller's switch."""
    state = _state(runtime)
    mine = await state.store.user_settings(user_id)
    return PushConfig(
        vapid_public_key=state.public_key,
        enabled=mine.enabled,
        preview=mine.preview,
    )


@router.post("/push-subscriptions", status_code=201, response_class=Response)
async def subscribe(user_id: UserId, runtime: RuntimeDep, body: PushSubscriptionBody) -> Response:
    """Register this browser for pushes (201; the same endpoint again replaces it). The
    endpoint must be https and a public host (HUB_OUTBOUND_* name exceptions); 409 past
    `HUB_PUSH_MAX_SUBSCRIPTIONS_PER_USER`."""
    state = _state(runtime)
    if state.public_key is None:
        raise Conflict("Web Push is not configured on this hub (HUB_VAPID_PRIVATE_KEY)")
    await asyncio.to_thread(state.policy.url_address, body.endpoint, "endpoint")
    store = state.store
    most = runtime.settings.push_max_subscriptions_per_user
    known = await store.has_subscription(user_id, body.endpoint)
    if not known and await store.count(user_id) >= most:
        raise TooManySubscriptions(
            f"this user has {most} push subscriptions, the most allowed "
            "(HUB_PUSH_MAX_SUBSCRIPTIONS_PER_USER); unsubscribe a browser first"
        )
    await store.subscribe(
        user_id, body.endpoint, b64url_decode(body.keys.p256dh), b64url_decode(body.keys.auth)
    )
    return Response(status_code=201)


@router.delete("/push-subscriptions", status_code=204, response_class=Response)
async def unsubscribe(user_id: UserId, runtime: RuntimeDep, body: EndpointBody) -> Response:
    """Forget this browser's subscription; 404 when the caller has none with that endpoint."""
    if not await _state(runtime).store.unsubscribe(user_id, body.endpoint):
        raise NotFound("no push subscription with that endpoint")
    return Response(status_code=204)


@router.put("/push-settings", response_model=PushSettingsBody)
async def put_push_settings(
    user_id: UserId, runtime: RuntimeDep, body: PushSettingsBody
) -> PushSettingsBody:
    """Turn the caller's notifications on or off, and their previews."""
    await _state(runtime).store.set_user_settings(
        user_id, UserPushSettings(body.enabled, body.preview)
    )
    return body


async def _own(runtime: Any, user_id: str, conversation_id: str) -> None:
    if not await runtime.inbox.owns_conversation(user_id, conversation_id):
        raise NotFound(f"no conversation {conversation_id!r}")


@router.get("/conversations/{conversation_id}/mute", response_model=MuteState)
async def get_mute(
    user_id: UserId, runtime: RuntimeDep, conversation_id: ConversationId
) -> MuteState:
    """Whether the caller muted this conversation's notifications; 404 unless theirs."""
    await _own(runtime, user_id, conversation_id)
    muted = await _state(runtime).store.is_muted(user_id, conversation_id)
    return MuteState(conversation_id=conversation_id, muted=muted)


@router.put("/conversations/{conversation_id}/mute", response_model=MuteState)
async def put_mute(
    user_id: UserId, runtime: RuntimeDep, conversation_id: ConversationId, body: MuteBody
) -> MuteState:
    """Mute or unmute this conversation's notifications; 404 unless it is the caller's."""
    await _own(runtime, user_id, conversation_id)
    await _state(runtime).store.set_muted(user_id, conversation_id, body.muted)
    return MuteState(conversation_id=conversation_id, muted=body.muted)
