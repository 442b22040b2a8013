"""`/webhooks/{platform}/{account_id}`: size limit, account, authenticity, parse, produce.

The order is the contract's: 413 before anything else, then 404, then 401 (checked on the
raw bytes, before parsing), then 400 (with a dead letter), and 200 only after Kafka's ack
(503 when it does not come in time).
"""

from __future__ import annotations

import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from connectors.errors import (
    BadPayload,
    BodyTooLarge,
    ConnectorError,
    RateLimited,
    UnknownAccount,
)
from connectors.metrics import IGNORED, WEBHOOK_REQUESTS, WEBHOOK_SECONDS
from connectors.platforms import WEBHOOK_PLATFORMS
from connectors.platforms.whatsapp import verify_subscription
from connectors.runtime import Runtime, runtime
from hubcore.accounts import Account
from hubcore.ratelimit import retry_after
from schemas.base import utc_now

log = structlog.get_logger("connectors.webhooks")
router = APIRouter()
RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    Content-Length is checked first (cheap refusal), and the bytes are counted while
    reading, since a chunked body or a lying header would otherwise get through.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadPayload(f"Content-Length {declared[:40]!r} is not a number") from None
        if size > limit:
            raise BodyTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(exc: ConnectorError) -> JSONResponse:
    """The JSON body of every non-200 answer: `{"error": code, "message": what is wrong}`."""
    headers = (
        {"Retry-After": retry_after(exc.retry_after)} if isinstance(exc, RateLimited) else None
    )
    return JSONResponse(
        {"error": exc.code, "message": str(exc)}, status_code=exc.status, headers=headers
    )


async def _account(rt: Runtime, platform: str, account_id: str) -> Account:
    account = await rt.accounts.get(account_id)
    if account is None or account.platform != platform:
        raise UnknownAccount(f"no {platform} account {account_id[:128]!r}")
    return account


@router.post("/webhooks/{platform}/{account_id}")
async def receive(platform: str, account_id: str, request: Request) -> Response:
    """Receive one platform webhook delivery."""
    # Not a dependency: resolving one costs FastAPI about 8% of a webhook's CPU (P1).
    rt: Runtime = request.app.state.runtime
    started = time.perf_counter()
    received_at = utc_now()
    adapter = WEBHOOK_PLATFORMS.get(platform)
    label = platform if adapter else "unknown"
    bound = log.bind(platform=label, account_id=account_id[:128])
    fields: dict[str, object] = {}
    try:
        if adapter is None:
            raise UnknownAccount(f"no webhook for platform {platform[:40]!r}")
        body = await read_limited_body(request, rt.settings.max_body_bytes)
        account = await _account(rt, platform, account_id)
        bound = bound.bind(user_id=account.user_id)
        adapter.verify(account, request.headers, body, time.time())
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
        for ignored in outcome.ignored:
            IGNORED.labels(platform, ignored.reason).inc()
        fields.update(
            produced=published.produced,
            duplicates=published.duplicates,
            ignored=[i.reason for i in outcome.ignored],
            message_ids=[r.id for r in outcome.records],
        )
        response = outcome.reply or JSONResponse(
            {
                "status": "ok",
                "messageIds": [r.id for r in outcome.records],
                "duplicates": published.duplicates,
                "ignored": len(outcome.ignored),
            }
        )
    except ConnectorError as exc:
        fields["error"] = str(exc)
        response = error_response(exc)
    elapsed = time.perf_counter() - started
    WEBHOOK_REQUESTS.labels(label, str(response.status_code)).inc()
    WEBHOOK_SECONDS.labels(label).observe(elapsed)
    bound.info("webhook", status=response.status_code, ms=round(elapsed * 1000, 1), **fields)
    return response


@router.get("/webhooks/whatsapp/{account_id}")
async def whatsapp_subscribe(account_id: str, request: Request, rt: RuntimeDep) -> Response:
    """Meta's verification handshake: echo `hub.challenge` when `hub.verify_token` matches.

    A wrong or missing token gets 401, the contract's answer for a wrong secret; Meta
    treats any answer but 200-with-the-challenge as a failed verification.
    """
    try:
        account = await _account(rt, "whatsapp", account_id)
        challenge = verify_subscription(account, request.query_params)
    except ConnectorError as exc:
        log.info("whatsapp verification", account_id=account_id[:128], status=exc.status)
        return error_response(exc)
    log.info("whatsapp verification", account_id=account_id, status=200)
    return PlainTextResponse(challenge)
