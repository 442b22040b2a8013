"""Sends pending deliveries: one worker per endpoint, each strictly in the order of its
events (so in order per conversation), none waiting on another.

The queue is the `webhook_deliveries` collection (`hubcore.webhooks`): a worker takes its
endpoint's oldest pending deliveries, sends them one by one, and records each attempt; a
failure reschedules the delivery with the back-off (`hubcore.retry.Backoff`, Retry-After
honoured) and the worker stops until it is due, holding back the endpoint's later events.
A scan every `HUB_WEBHOOK_SCAN_INTERVAL` starts workers for deliveries that came due
(retries, replays, pings, a restart's leftovers). After the last attempt the delivery goes
to `hub.dead-letter` and the endpoint is disabled, its other deliveries kept pending until
the user resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from pymongo.errors import PyMongoError

from connectors.deliveries.metrics import (
    ATTEMPT_SECONDS,
    BACKLOG,
    DELIVERIES,
    EVENT_TO_DELIVERY_SECONDS,
    FAILURES,
)
from connectors.errors import SendError
from connectors.outbound.http import post, retry_after
from connectors.outbound.senders import _pinned
from connectors.publisher import Publisher
from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.retry import Backoff
from hubcore.settings import Settings
from hubcore.webhooks import LOGGED_ATTEMPTS, FailureReason, Webhook, WebhookStore, sign
from schemas import DeadLetterSource
from schemas.base import utc_now

log = structlog.get_logger("connectors.deliveries")

BATCH = 20  # pending deliveries a worker reads at once
BACKLOG_EVERY = 5.0  # seconds between counts of the back-log
USER_AGENT = "hub-webhooks/1"


def _reason(status: int) -> FailureReason:
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    return "http_4xx" if status >= 400 else "http_3xx"


class Dispatcher:
    """Workers per endpoint, the scan for due deliveries, and the attempts themselves."""

    def __init__(
        self,
        settings: Settings,
        store: WebhookStore,
        http: httpx.AsyncClient,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        self.publisher = publisher
        self.backoff = Backoff(
            attempts=settings.webhook_attempts,
            first=settings.webhook_backoff_first,
            factor=2.0,
            max_delay=settings.webhook_backoff_max,
        )
        self.partitions: set[int] = set()  # of hub.user-events, owned by this process
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # nudged while running: look once more before ending
        self._scan: asyncio.Task[None] | None = None
        self.source_topic = Topics.from_settings(settings).user_events

    def start(self) -> None:
        self._scan = asyncio.create_task(self._scan_loop(), name="webhook-scan")

    async def stop(self) -> None:
        tasks = [t for t in (self._scan, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        # A request under way is dropped: its delivery is still pending, sent again later
        # with the same webhook-id (at least once).
        await asyncio.gather(*tasks, return_exceptions=True)

    def nudge(self, webhook_ids: Iterable[str]) -> None:
        """New deliveries for these endpoints: make sure each has a worker."""
        for webhook_id in webhook_ids:
            if webhook_id in self._workers:
                self._again.add(webhook_id)
            else:
                self._workers[webhook_id] = asyncio.create_task(
                    self._work(webhook_id), name=f"webhook-{webhook_id}"
                )

    # --- the scan -------------------------------------------------------------------
    async def _scan_loop(self) -> None:
        counted = 0.0
        while True:
            try:
                await self._scan_once()
                if time.monotonic() - counted > BACKLOG_EVERY:
                    counted = time.monotonic()
                    BACKLOG.set(
                        await self.store.deliveries.count_documents(
                            {"state": "pending", "partition": {"$in": sorted(self.partitions)}}
                        )
                    )
            except PyMongoError as exc:
                log.warning("webhook scan failed", error=str(exc)[:200])
            await asyncio.sleep(self.settings.webhook_scan_interval)

    async def _scan_once(self) -> None:
        if not self.partitions:
            return
        query = {
            "state": "pending",
            "nextAttemptAt": {"$lte": utc_now()},
            "partition": {"$in": sorted(self.partitions)},
        }
        due = {
            doc["webhookId"]
            async for doc in self.store.deliveries.find(query, {"webhookId": 1}).limit(1000)
        }
        idle = sorted(due - self._workers.keys())
        if not idle:
            return
        active = {"_id": {"$in": idle}, "paused": False, "disabledReason": None}
        self.nudge([doc["_id"] async for doc in self.store.webhooks.find(active, {"_id": 1})])

    # --- one endpoint ---------------------------------------------------------------
    async def _work(self, webhook_id: str) -> None:
        try:
            while True:
                self._again.discard(webhook_id)
                more = await self._round(webhook_id)
                if not more and webhook_id not in self._again:
                    return
        except PyMongoError as exc:
            log.warning("webhook worker stopped", webhook=webhook_id, error=str(exc)[:200])
        except Exception:
            # One endpoint must never end the process's deliveries; the scan restarts it.
            log.exception("webhook worker crashed", webhook=webhook_id)
        finally:
            self._workers.pop(webhook_id, None)

    async def _round(self, webhook_id: str) -> bool:
        """Send what is due, in order; True when more may be due at once."""
        webhook = await self.store.get(webhook_id)
        if webhook is None or not webhook.active:
            return False
        query = {"webhookId": webhook_id, "state": "pending"}
        cursor = self.store.deliveries.find(query).sort([("seq", 1), ("createdAt", 1)])
        batch = await cursor.limit(BATCH).to_list()
        for doc in batch:
            if doc["partition"] not in self.partitions:
                return False  # another process owns this user's events now
            wait = (doc["nextAttemptAt"] - utc_now()).total_seconds()
            if wait > 0:
                if wait > self.settings.webhook_scan_interval:
                    return False  # the scan starts a worker again once it is due
                await asyncio.sleep(wait)
            if not await self._attempt(webhook, doc):
                return True  # look again: the head may be due at once (Retry-After: 0)
        return len(batch) == BATCH

    async def _attempt(self, webhook: Webhook, doc: Document) -> bool:
        """One attempt; records it and returns whether it was delivered."""
        body = doc["body"].encode()
        now = utc_now()
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": doc["_id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(webhook.signing_secrets, doc["_id"], timestamp, body),
        }
        started = time.perf_counter()
        status: int | None = None
        reason: FailureReason | None = None
        wait_asked: float | None = None
        try:
            pinned, host, server_name = await asyncio.to_thread(_pinned, self.settings, webhook.url)
            response = await post(
                self.http,
                pinned,
                what="webhook",
                # Not idempotent for post's purposes: it tells a request that never left
                # (connect) from one whose answer never came (timeout); both are retried.
                idempotent=False,
                timeout=self.settings.webhook_timeout,
                content=body,
                headers={**headers, "Host": host},
                extensions={"sni_hostname": server_name},
                max_answer_bytes=self.settings.webhook_max_answer_bytes,
            )
            status = response.status_code
            if not response.is_success:
                reason = _reason(status)
                wait_asked = retry_after(response)
        except SendError as exc:
            if "refused" in exc.message:
                reason = "refused_address"
            else:
                reason = "timeout" if exc.ambiguous else "connect"
        latency = time.perf_counter() - started
        ATTEMPT_SECONDS.observe(latency)
        entry = {
            "at": now,
            "status": status,
            "latencyMs": round(latency * 1000, 1),
            "error": reason,
        }
        attempts = doc["attempts"] + 1
        logged = [*doc.get("lastAttempts", []), entry][-LOGGED_ATTEMPTS:]
        update: dict[str, Any] = {"attempts": attempts, "lastAttempts": logged}
        if reason is None:
            DELIVERIES.labels("delivered").inc()
            if attempts == 1 and not doc.get("ping"):
                EVENT_TO_DELIVERY_SECONDS.observe(_age(doc))
            update |= {"state": "delivered", "deliveredAt": utc_now(), "nextAttemptAt": None}
        else:
            FAILURES.labels(reason).inc()
            if doc.get("ping") or attempts >= self.backoff.attempts:
                DELIVERIES.labels("dead").inc()
                update |= {"state": "dead", "nextAttemptAt": None}
            else:
                DELIVERIES.labels("failed").inc()
                delay = self.backoff.delay(attempts, wait_asked)
                update["nextAttemptAt"] = utc_now() + timedelta(seconds=delay)
        await self.store.deliveries.update_one({"_id": doc["_id"]}, {"$set": update})
        if update.get("state") == "dead" and not doc.get("ping"):
            await self._give_up(webhook, doc, attempts, reason, status)
        return reason is None

    async def _give_up(
        self,
        webhook: Webhook,
        doc: Document,
        attempts: int,
        reason: FailureReason | None,
        status: int | None,
    ) -> None:
        """The last attempt failed: dead letter, and the endpoint disabled (reason kept)."""
        last = f"{reason}" + (f" ({status})" if status is not None else "")
        why = f"delivery {doc['_id']} failed {attempts} attempts since {doc['createdAt']}: {last}"
        await self.store.disable(webhook.id, why)
        log.warning("webhook disabled", webhook=webhook.id, reason=why)
        with contextlib.suppress(Exception):  # the delivery log keeps it either way
            await self.publisher.dead_letter(
                reason=f"webhook {webhook.id}: {why}",
                error_type="webhook_failed",
                platform="webhook",
                account_id=webhook.user_id,
                payload=doc["body"].encode(),
                source=DeadLetterSource(
                    topic=self.source_topic, partition=doc["partition"], offset=doc["seq"]
                ),
            )


def _age(doc: Document) -> float:
    """Seconds since the event occurred (its body's `occurredAt`), 0 when unreadable."""
    try:
        occurred = datetime.fromisoformat(orjson.loads(doc["body"])["occurredAt"])
        return max((utc_now() - occurred).total_seconds(), 0.0)
    except (ValueError, KeyError, TypeError):
        return 0.0
