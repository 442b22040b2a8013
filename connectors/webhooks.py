"""`/webhooks/{platform}/{account_id}`: size limit, account, authenticity, parse, produce.

The order is the contract's: 413 before anything else, then 404, then 401 (checked on the
raw bytes, before parsing), then 400 (with a dead letter), and 200 only after Kafka's ack
(503 when it does not come in time).

A POST there is answered by `answer_webhook`, plain ASGI in front of FastAPI's middleware
and routing: no route matching, no dependency solving, no response model (see README,
Performance). Everything else goes on to FastAPI.
"""

from __future__ import annotations

import functools
import re
import time

import orjson
import structlog
from fastapi import APIRouter
from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from connectors.errors import (
    BadPayload,
    BodyTooLarge,
    ConnectorError,
    RateLimited,
    UnknownAccount,
)
from connectors.metrics import IGNORED, WEBHOOK_REQUESTS, WEBHOOK_SECONDS, ignored_reason
from connectors.platforms import WEBHOOK_PLATFORMS
from connectors.platforms.whatsapp import verify_subscription
from connectors.runtime import Runtime
from hubcore.accounts import Account
from hubcore.ratelimit import retry_after
from schemas.base import utc_now

log = structlog.get_logger("connectors.webhooks")
router = APIRouter()

# The same segments Starlette's `{param}` matches: anything but a slash.
_WEBHOOK_PATH = re.compile(r"/webhooks/([^/]+)/([^/]+)")


async def answer_webhook(app: Starlette, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer `POST /webhooks/{platform}/{account_id}`; False (nothing sent) for any other
    request. Called before FastAPI's middleware and routing (`ConnectorsApp`)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    match = _WEBHOOK_PATH.fullmatch(scope["path"])
    if match is None:
        return False
    rt: Runtime = app.state.runtime
    response = await receive_webhook(rt, match[1], match[2], Headers(scope=scope), receive)
    await response(scope, receive, send)
    return True


async def read_limited_body(headers: Headers, receive: Receive, limit: int) -> bytes:
    """The raw body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    Content-Length is checked first (cheap refusal), and the bytes are counted while
    reading, since a chunked body or a lying header would otherwise get through.
    """
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadPayload(f"Content-Length {declared[:40]!r} is not a number") from None
        if size > limit:
            raise BodyTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def error_response(exc: ConnectorError) -> JSONResponse:
    """The JSON body of every non-200 answer: `{"error": code, "message": what is wrong}`."""
    headers = (
        {"Retry-After": retry_after(exc.retry_after)} if isinstance(exc, RateLimited) else None
    )
    return JSONResponse(
        {"error": exc.code, "message": str(exc)}, status_code=exc.status, headers=headers
    )


def _ok(body: dict[str, object]) -> Response:
    # orjson writes what JSONResponse would (compact UTF-8) at a fraction of the cost.
    return Response(orjson.dumps(body), media_type="application/json")


# The labelled children, looked up once: `labels()` takes a lock and builds a key each time.
@functools.cache
def _answered(platform: str, status: int) -> Counter:
    return WEBHOOK_REQUESTS.labels(platform, str(status))


@functools.cache
def _latency(platform: str) -> Histogram:
    return WEBHOOK_SECONDS.labels(platform)


async def _account(rt: Runtime, platform: str, account_id: str) -> Account:
    account = await rt.accounts.get(account_id)
    if account is None or account.platform != platform:
        raise UnknownAccount(f"no {platform} account {account_id[:128]!r}")
    return account


async def receive_webhook(
    rt: Runtime, platform: str, account_id: str, headers: Headers, receive: Receive
) -> Response:
    """Receive one platform webhook delivery; one log line, whatever the outcome."""
    started = time.perf_counter()
    received_at = utc_now()
    adapter = WEBHOOK_PLATFORMS.get(platform)
    label = platform if adapter else "unknown"
    fields: dict[str, object] = {}
    try:
        if adapter is None:
            raise UnknownAccount(f"no webhook for platform {platform[:40]!r}")
        body = await read_limited_body(headers, receive, rt.settings.max_body_bytes)
        account = await _account(rt, platform, account_id)
        fields["user_id"] = account.user_id
        adapter.verify(account, headers, body, time.time())
        # After the signature: forged floods must not use up the genuine deliveries' allowance.
        limit = rt.webhook_limit
        if limit is not None and (wait := limit.acquire(account.id)):
            raise RateLimited(f"over {limit.spec} webhooks for this account", wait)
        try:
            outcome = adapter.parse(account, body, received_at)
        except BadPayload as exc:
            await rt.publisher.dead_letter(
                reason=str(exc),
                error_type=type(exc).__name__,
                platform=platform,
                account_id=account.id,
                payload=body,
            )
            fields["dead_letter"] = True
            raise
        published = await rt.publisher.publish(outcome.records, source="webhook")
        if outcome.changes:
            await rt.publisher.commands(outcome.changes)
            fields["changes"] = [c.type for c in outcome.changes]
        for ignored in outcome.ignored:
            IGNORED.labels(platform, ignored_reason(ignored.reason)).inc()
        ids = [r.id for r in outcome.records]
        fields.update(
            produced=published.produced,
            duplicates=published.duplicates,
            ignored=[i.reason for i in outcome.ignored],
            message_ids=ids,
        )
        response = outcome.reply or _ok(
            {
                "status": "ok",
                "messageIds": ids,
                "duplicates": published.duplicates,
                "ignored": len(outcome.ignored),
                "changes": len(outcome.changes),
            }
        )
    except ConnectorError as exc:
        fields["error"] = str(exc)
        response = error_response(exc)
    elapsed = time.perf_counter() - started
    status = response.status_code
    _answered(label, status).inc()
    _latency(label).observe(elapsed)
    log.info(
        "webhook",
        platform=label,
        account_id=account_id[:128],
        status=status,
        ms=round(elapsed * 1000, 1),
        **fields,
    )
    return response


@router.post("/webhooks/{platform}/{account_id}")
async def receive(platform: str, account_id: str, request: Request) -> Response:
    """Receive one platform webhook delivery.

    `answer_webhook` answers these before FastAPI sees them; the route stays for the API's
    description and so that other methods on the path still get 405.
    """
    rt: Runtime = request.app.state.runtime
    return await receive_webhook(rt, platform, account_id, request.headers, request.receive)


@router.get("/webhooks/whatsapp/{account_id}")
async def whatsapp_subscribe(account_id: str, request: Request) -> Response:
    """Meta's verification handshake: echo `hub.challenge` when `hub.verify_token` matches.

    A wrong or missing token gets 401, the contract's answer for a wrong secret; Meta
    treats any answer but 200-with-the-challenge as a failed verification.
    """
    rt: Runtime = request.app.state.runtime
    try:
        account = await _account(rt, "whatsapp", account_id)
        challenge = verify_subscription(account, request.query_params)
    except ConnectorError as exc:
        log.info("whatsapp verification", account_id=account_id[:128], status=exc.status)
        return error_response(exc)
    log.info("whatsapp verification", account_id=account_id, status=200)
    return PlainTextResponse(challenge)
