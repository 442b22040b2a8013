"""A Web Push service stand-in on loopback, speaking RFC 8030 as a browser vendor's does.

Each subscription is made here as a browser makes it: a fresh P-256 key pair and auth
secret, whose public half goes to the hub. A push is taken (201 Created, Location) only
when its VAPID token (RFC 8292) verifies against the `k` it carries, names this service's
origin, and expires within 24 h; when `TTL` is there and `Urgency`/`Topic` are valid; and
when its body DECRYPTS (RFC 8291) with the subscription's private key: so the hub's
encryption is really checked. A subscription may be told to answer other statuses first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hubcore.webpush import b64url, b64url_decode, decrypt, public_point
from tests.integration.gateway_kit import serving

URGENCIES = ("very-low", "low", "normal", "high")


@dataclass
class Browser:
    """One subscription as the browser holds it."""

    id: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)

    @property
    def p256dh(self) -> bytes:
        return public_point(self.key.public_key())

    def subscription_json(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives the page."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)},
        }


@dataclass(frozen=True)
class Receipt:
    """A push the service took: the decrypted notification and the headers it read."""

    subscription: str
    payload: dict[str, Any]
    ttl: int
    urgency: str
    topic: str | None
    vapid_sub: str


class PushService:
    """The stand-in's state: subscriptions, what it took, and what it refused and why."""

    def __init__(self) -> None:
        self.base = ""
        self.browsers: dict[str, Browser] = {}
        self.receipts: list[Receipt] = []
        self.refusals: list[str] = []
        self.attempts: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self.app = Starlette(routes=[Route("/push/{sid}", self._push, methods=["POST"])])

    def browser(self) -> Browser:
        sid = uuid.uuid4().hex
        made = Browser(
            sid, f"{self.base}/push/{sid}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
        )
        self.browsers[sid] = made
        return made

    def of(self, browser: Browser) -> list[Receipt]:
        return [r for r in self.receipts if r.subscription == browser.id]

    async def wait_for(self, browser: Browser, count: int, timeout: float = 30) -> list[Receipt]:
        """The first `count` receipts of `browser`, once they came."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.of(browser)) >= count)
        return self.of(browser)[:count]

    async def _refuse(self, why: str, status: int) -> Response:
        self.refusals.append(why)
        async with self._changed:
            self._changed.notify_all()
        return Response(why, status_code=status)

    async def _push(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        browser = self.browsers.get(sid)
        self.attempts[sid] = self.attempts.get(sid, 0) + 1
        if browser is None:
            return Response(status_code=404)
        if browser.answers:
            status, extra = browser.answers.popleft()
            return Response(status_code=status, headers=extra)
        headers = request.headers
        try:
            ttl = int(headers["ttl"])
        except (KeyError, ValueError):
            return await self._refuse("TTL missing or not a number", 400)
        urgency = headers.get("urgency", "normal")
        if urgency not in URGENCIES:
            return await self._refuse(f"bad Urgency {urgency!r}", 400)
        topic = headers.get("topic")
        if topic is not None and (len(topic) > 32 or not _b64url_chars(topic)):
            return await self._refuse(f"bad Topic {topic!r}", 400)
        if headers.get("content-encoding") != "aes128gcm":
            return await self._refuse("Content-Encoding is not aes128gcm", 415)
        try:
            vapid_sub = self._verify_vapid(headers.get("authorization", ""))
        except (ValueError, jwt.PyJWTError) as exc:
            return await self._refuse(f"VAPID: {exc}", 401)
        body = await request.body()
        try:
            plain = decrypt(body, browser.key, browser.auth)
            payload = orjson.loads(plain)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return await self._refuse(f"payload: {exc}", 400)
        self.receipts.append(Receipt(sid, payload, ttl, urgency, topic, vapid_sub))
        async with self._changed:
            self._changed.notify_all()
        return Response(status_code=201, headers={"Location": f"/message/{uuid.uuid4().hex}"})

    def _verify_vapid(self, header: str) -> str:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("not the vapid scheme")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b64url_decode(fields["k"])
        )
        claims = jwt.decode(
            fields["t"],
            key,
            algorithms=["ES256"],
            audience=self.base,
            options={"require": ["exp", "aud", "sub"]},
        )
        if claims["exp"] > time.time() + 24 * 3600:
            raise ValueError("exp more than 24 h ahead")
        subject = str(claims["sub"])
        if not subject.startswith(("mailto:", "https:")):
            raise ValueError("sub is neither mailto: nor https:")
        return subject


def _b64url_chars(text: str) -> bool:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    return all(c in allowed for c in text)


@contextlib.asynccontextmanager
async def push_service() -> AsyncIterator[PushService]:
    """The stand-in, served on a free loopback port for the block."""
    service = PushService()
    config = uvicorn.Config(service.app, log_level="warning", lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        service.base = f"http://127.0.0.1:{port}"
        yield service
