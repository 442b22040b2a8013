"""One encrypted push to one subscription (RFC 8030/8291/8292), its answer sorted.

The endpoint is checked against the outbound address policy at every send and the
request goes to the address that passed (no DNS rebinding); the answer is read with a
byte cap within the timeout; 429 and 5xx are retried with back-off (Retry-After
honoured), 404 and 410 remove the subscription.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog

from connectors.errors import SendError
from connectors.outbound.http import post, status_error
from connectors.push.metrics import PUSH_FAILED, PUSH_SECONDS, PUSH_SENT
from hubcore.errors import InvalidInput
from hubcore.outbound import OutboundPolicy
from hubcore.push_store import PushStore, Subscription
from hubcore.retry import Backoff, retry
from hubcore.settings import Settings
from hubcore.webpush import Vapid, encrypt

log = structlog.get_logger("connectors.push")

# A push service answers with a short body (an error description at most).
MAX_ANSWER_BYTES = 4096


class Gone(Exception):
    """404/410: the browser unsubscribed or the subscription expired."""


class Answered(SendError):
    """The push service answered with an error status (kept for the failure's reason)."""

    def __init__(self, error: SendError, status: int) -> None:
        super().__init__(str(error), retriable=error.retriable, retry_after=error.retry_after)
        self.status = status


@dataclass(frozen=True, slots=True)
class Push:
    """One notification: its JSON, the `Topic` (replaces an undelivered one of the same
    conversation at the push service) and the `Urgency`."""

    payload: bytes
    topic: str
    urgency: str = "normal"


class PushSender:
    """Sends pushes; every failure is that subscription's, returned as a reason."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        vapid: Vapid,
        store: PushStore,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.http = http
        self.vapid = vapid
        self.store = store
        self.sleep = sleep
        self.policy = OutboundPolicy.from_settings(settings)
        self.backoff = Backoff(attempts=settings.push_attempts, max_delay=60.0)

    async def send(self, sub: Subscription, push: Push) -> str | None:
        """None when the push service took it, else the failure reason (metrics' set)."""
        started = time.perf_counter()
        try:
            await self._send(sub, push)
        except Gone:
            await self.store.remove(sub.id)
            reason: str | None = "gone"
        except InvalidInput as exc:
            log.warning("push_refused_address", subscription=sub.id[:12], error=str(exc))
            reason = "refused"
        except SendError as exc:
            reason = _reason(exc)
            log.info("push_failed", subscription=sub.id[:12], reason=reason, error=str(exc))
        except Exception:
            # One subscription must never end the notifier.
            log.exception("push_crashed", subscription=sub.id[:12])
            reason = "internal"
        else:
            reason = None
        PUSH_SECONDS.observe(time.perf_counter() - started)
        if reason is None:
            PUSH_SENT.inc()
        else:
            PUSH_FAILED.labels(reason).inc()
        return reason

    async def _send(self, sub: Subscription, push: Push) -> None:
        pinned, host, server_name = await asyncio.to_thread(
            self.policy.pin_url, sub.endpoint, "endpoint"
        )
        body = encrypt(push.payload, sub.p256dh, sub.auth)
        headers = {
            "Host": host,
            "TTL": str(self.settings.push_ttl),
            "Urgency": push.urgency,
            "Topic": push.topic,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self.vapid.authorization(sub.endpoint),
        }
        what = "push service"

        async def call(attempt: int) -> None:
            response = await post(
                self.http,
                pinned,
                what=what,
                idempotent=True,  # the same Topic replaces, the page's tag too
                timeout=self.settings.push_timeout,
                content=body,
                headers=headers,
                extensions={"sni_hostname": server_name},
                max_answer_bytes=MAX_ANSWER_BYTES,
            )
            if response.is_success:
                return
            if response.status_code in (404, 410):
                raise Gone
            description = response.text[:200].strip() or response.reason_phrase
            error = status_error(what, response, description)
            raise Answered(error, response.status_code)

        await retry(call, self.backoff, sleep=self.sleep)


def _reason(exc: SendError) -> str:
    if not isinstance(exc, Answered):
        return "unreachable"  # no answer: refused, timed out, cut off
    if exc.status == 429:
        return "throttled"
    return "server_error" if exc.status >= 500 else "rejected"
