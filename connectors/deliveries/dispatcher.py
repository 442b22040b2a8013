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
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from pymongo import UpdateOne
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
from connectors.outbound.senders import pinned_url
from connectors.publisher import Publisher
from hubcore.kafka import Topics
from hubcore.mongo import Document, bulk_write_chunked
from hubcore.settings import Settings
from hubcore.webhooks import (
    LOGGED_ATTEMPTS,
    FailureReason,
    Webhook,
    WebhookStore,
    retry_schedule,
    sign,
)
from schemas import DeadLetterSource
from schemas.base import utc_now

log = structlog.get_logger("connectors.deliveries")

QUEUE_MAX = 1000  # deliveries of one endpoint held in memory
RECORD_EVERY = 50  # successes recorded together at most
IDLE_SECONDS = 60.0  # an idle endpoint's worker ends after this (its lane stays)
WEBHOOK_TTL = 2.0  # seconds an endpoint read is used (pause, rotation take this long)
BACKLOG_EVERY = 15.0  # seconds between counts of the back-log
ADDRESS_TTL = 30.0  # seconds a checked address of an endpoint is used
PRUNE_EVERY = 3600.0  # seconds between removals of old log entries
USER_AGENT = "hub-webhooks/1"


def _reason(status: int) -> FailureReason:
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    return "http_4xx" if status >= 400 else "http_3xx"


@dataclass(eq=False)
class _Lane:
    """One endpoint's queue in memory: its pending deliveries in order, all of them when
    `complete`, else a prefix (the rest is read from the store once the queue is empty)."""

    queue: deque[Document] = field(default_factory=deque)
    complete: bool = False
    # Bumped whenever a delivery is left to the store: a read that began before it may
    # have missed it, so it must not mark the lane complete.
    dirty: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    webhook: Webhook | None = None
    checked: float = 0.0  # monotonic time `webhook` was read
    # Paused, disabled, deleted or on a partition owned elsewhere: nothing to do until an
    # event, a wake-up or a rebalance says otherwise.
    parked: bool = False


class Dispatcher:
    """Lanes per endpoint, the scan for wake-ups, and the attempts themselves."""

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
        self.backoff = retry_schedule(settings)
        self.partitions: set[int] = set()  # of hub.user-events, owned by this process
        self._taking_over: set[int] = set()  # owned, their pending deliveries not read yet
        self._addresses: dict[str, tuple[float, tuple[str, str, str]]] = {}
        self._lanes: dict[str, _Lane] = {}
        self._scan: asyncio.Task[None] | None = None
        self.source_topic = Topics.from_settings(settings).user_events

    def start(self) -> None:
        self._scan = asyncio.create_task(self._scan_loop(), name="webhook-scan")

    async def stop(self) -> None:
        tasks = [t for t in (self._scan, *(lane.task for lane in self._lanes.values())) if t]
        for task in tasks:
            task.cancel()
        # A request under way is dropped: its delivery is still pending, sent again later
        # with the same webhook-id (at least once).
        await asyncio.gather(*tasks, return_exceptions=True)

    def add(self, webhook_id: str, docs: list[Document]) -> None:
        """New deliveries of an endpoint, already in the store, in event order."""
        lane = self._lanes.setdefault(webhook_id, _Lane())
        lane.parked = False
        if not lane.queue:
            lane.checked = 0.0  # idle until now: sign with the endpoint as it is now
        if lane.complete and len(lane.queue) + len(docs) <= QUEUE_MAX:
            lane.queue.extend(docs)
        else:
            lane.complete = False
            lane.dirty += 1
        self._run(webhook_id, lane)

    def reload(self, webhook_ids: Iterable[str]) -> None:
        """The store has deliveries of these endpoints the lanes may not (a replay, a ping,
        a resumed endpoint, a partition taken over)."""
        for webhook_id in webhook_ids:
            lane = self._lanes.setdefault(webhook_id, _Lane())
            lane.complete = False
            lane.parked = False
            lane.dirty += 1
            lane.checked = 0.0  # read the endpoint again too: it may have been resumed
            self._run(webhook_id, lane)

    def _run(self, webhook_id: str, lane: _Lane) -> None:
        lane.wake.set()
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(
                self._work(webhook_id, lane), name=f"webhook-{webhook_id}"
            )

    # --- the scan -------------------------------------------------------------------
    async def _scan_loop(self) -> None:
        counted = pruned = -math.inf  # both at the first round
        while True:
            try:
                await self._take_over()
                await self._wakeups()
                self._revive()
                if time.monotonic() - pruned > PRUNE_EVERY and self.partitions:
                    pruned = time.monotonic()
                    await self._prune()
                if time.monotonic() - counted > BACKLOG_EVERY and self.partitions:
                    counted = time.monotonic()
                    BACKLOG.set(
                        await self.store.deliveries.count_documents(
                            {"state": "pending", "partition": {"$in": sorted(self.partitions)}}
                        )
                    )
            except PyMongoError as exc:
                log.warning("webhook scan failed", error=str(exc)[:200])
            await asyncio.sleep(self.settings.webhook_scan_interval)

    def _revive(self) -> None:
        """Restart the workers a store outage or a crash ended with deliveries left."""
        for webhook_id, lane in self._lanes.items():
            stopped = lane.task is None or lane.task.done()
            if stopped and not lane.parked and (lane.queue or not lane.complete):
                self._run(webhook_id, lane)

    async def _prune(self) -> None:
        """Drop log entries of finished deliveries older than `HUB_WEBHOOK_LOG_DAYS`."""
        cutoff = utc_now() - timedelta(days=self.settings.webhook_log_days)
        await self.store.deliveries.delete_many(
            {
                "state": {"$in": ["delivered", "dead"]},
                "partition": {"$in": sorted(self.partitions)},
                "createdAt": {"$lt": cutoff},
            }
        )

    async def _wakeups(self) -> None:
        """Wake-ups the gateway left (`WebhookStore.wake`) for the partitions owned here."""
        if not self.partitions:
            return
        query = {"partition": {"$in": sorted(self.partitions)}}
        found = await self.store.wakeups.find(query).limit(1000).to_list()
        if found:
            self.reload({doc["webhookId"] for doc in found})
            await self.store.wakeups.delete_many({"_id": {"$in": [d["_id"] for d in found]}})

    def take_over(self, partitions: set[int]) -> None:
        """Partitions now owned (a rebalance, a start): the scan reads their endpoints'
        pending deliveries, left by the process that owned them before or by this one
        before a restart (not in the rebalance itself: a slow store must not hold it)."""
        self._taking_over |= partitions - self.partitions
        self.partitions |= partitions

    async def _take_over(self) -> None:
        if self._taking_over:
            query = {"state": "pending", "partition": {"$in": sorted(self._taking_over)}}
            found = await self.store.deliveries.distinct("webhookId", query)
            self._taking_over.clear()
            self.reload(found)

    # --- one endpoint ---------------------------------------------------------------
    async def _work(self, webhook_id: str, lane: _Lane) -> None:
        done: list[UpdateOne] = []
        try:
            while await self._step(webhook_id, lane, done):
                pass
        except PyMongoError as exc:
            log.warning("webhook worker stopped", webhook=webhook_id, error=str(exc)[:200])
            lane.complete = False
        except Exception:
            # One endpoint must never end the process's deliveries.
            log.exception("webhook worker crashed", webhook=webhook_id)
            lane.complete = False
        finally:
            with contextlib.suppress(PyMongoError):
                await self._record(done)

    async def _step(self, webhook_id: str, lane: _Lane, done: list[UpdateOne]) -> bool:
        """Send the head of the lane when due; False when the worker may end.

        Successes are recorded together (before any other store access, and at least
        every `RECORD_EVERY`): a crash in between sends them again with the same
        webhook-id (at least once), and a store write per delivery does not bound an
        endpoint's rate.
        """
        if len(done) >= RECORD_EVERY or (done and not lane.queue):
            await self._record(done)
        if not lane.queue and not lane.complete:
            seen = lane.dirty
            query = {"webhookId": webhook_id, "state": "pending"}
            cursor = self.store.deliveries.find(query).sort([("seq", 1), ("createdAt", 1)])
            lane.queue = deque(await cursor.limit(QUEUE_MAX).to_list())
            lane.complete = len(lane.queue) < QUEUE_MAX and lane.dirty == seen
        if not lane.queue:
            if lane.complete:
                lane.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), IDLE_SECONDS)
                return bool(lane.queue) or not lane.complete
            return True
        webhook = await self._webhook(webhook_id, lane)
        head = lane.queue[0]
        if webhook is None or not webhook.active or head["partition"] not in self.partitions:
            # Paused, disabled, deleted or no longer ours: the store keeps the deliveries.
            if webhook is None:
                self._lanes.pop(webhook_id, None)
            lane.queue.clear()
            lane.complete = False
            lane.parked = True
            return False
        wait = (head["nextAttemptAt"] - utc_now()).total_seconds()
        if wait > 0:
            await self._record(done)
            lane.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), wait)
            return True
        delivered, update = await self._attempt(webhook, head)
        if delivered:
            lane.queue.popleft()
            done.append(UpdateOne({"_id": head["_id"]}, {"$set": update}))
            return True
        await self._record([*done, UpdateOne({"_id": head["_id"]}, {"$set": update})])
        done.clear()
        if update["state"] == "dead":
            lane.queue.popleft()
            if not head.get("ping"):
                await self._give_up(webhook, head, update)
                lane.checked = 0.0
        else:
            lane.queue[0] = {**head, **update}
        return True

    async def _webhook(self, webhook_id: str, lane: _Lane) -> Webhook | None:
        """The endpoint, read again at most every `WEBHOOK_TTL` seconds (pause, rotation)."""
        if time.monotonic() - lane.checked > WEBHOOK_TTL:
            lane.webhook = await self.store.get(webhook_id)
            lane.checked = time.monotonic()
        return lane.webhook

    async def _address(self, url: str) -> tuple[str, str, str]:
        """The URL pinned to an address the outbound policy passed, resolved at most every
        `ADDRESS_TTL` seconds: a resolution (in a thread) per attempt cost a quarter of the
        process's CPU at 200 deliveries/s. Requests still go only to a checked address."""
        now = time.monotonic()
        cached = self._addresses.get(url)
        if cached is not None and now - cached[0] < ADDRESS_TTL:
            return cached[1]
        pinned = await asyncio.to_thread(pinned_url, self.settings, url)
        if len(self._addresses) >= 10_000:
            self._addresses.clear()  # endpoints are capped per user; this bounds the rest
        self._addresses[url] = (now, pinned)
        return pinned

    async def _record(self, done: list[UpdateOne]) -> None:
        if done:
            await bulk_write_chunked(self.store.deliveries, done)
            done.clear()

    async def _attempt(self, webhook: Webhook, doc: Document) -> tuple[bool, dict[str, Any]]:
        """One attempt: whether it was delivered, and the delivery's fields to record."""
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
            pinned, host, server_name = await self._address(webhook.url)
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
        update: dict[str, Any] = {"attempts": attempts, "lastAttempts": logged, "state": "pending"}
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
        return reason is None, update

    async def _give_up(self, webhook: Webhook, doc: Document, update: dict[str, Any]) -> None:
        """The last attempt failed: dead letter, and the endpoint disabled (reason kept)."""
        last = update["lastAttempts"][-1]
        answer = f"{last['error']}" + (f" ({last['status']})" if last["status"] else "")
        why = (
            f"delivery {doc['_id']} failed {update['attempts']} attempts since "
            f"{doc['createdAt']}: {answer}"
        )
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
