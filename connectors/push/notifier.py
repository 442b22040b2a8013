"""The push notifier: consumes `hub.user-events` (its own group) and sends a Web Push for
an inbound `new_message` to a user who has had no live device for `HUB_PUSH_GRACE`.

It runs as a task of the connectors process (`HUB_CONNECTORS_PUSH`): that process
already calls the outside with bounded, retried HTTP and holds a producer for the
dead-letter topic; a process of its own would add a deployment for a few µs of work per
message. Several connectors processes share the group: a user's events are in one
partition, so one process decides for that user and its coalescing windows hold.

Per conversation, at most one notification per `HUB_PUSH_INTERVAL`: the first message
of a quiet conversation is pushed at once; what arrives in the following interval is
pushed once at its end ("3 new messages"). A user who was seen less than the grace
period ago gets the push when the grace is over, unless they came back meanwhile.

Decisions are taken in order per partition and the offsets committed after them; the
pushes themselves run beside the consumer (a push service that is slow or retrying must
not hold up other users), so a crash may lose the pushes under way: a notification is
a hint, the inbox has the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from connectors.publisher import Publisher
from connectors.push.metrics import PUSH_DECISIONS
from connectors.push.sender import Push, PushSender
from hubcore.kafka import BATCH_MIN_BYTES, Session, Topics, consume_forever, create_consumer
from hubcore.mongo import Document
from hubcore.push_store import PushStore, Subscription
from hubcore.settings import Settings
from hubcore.webpush import MAX_PAYLOAD_BYTES, Vapid, b64url
from schemas import DeadLetterSource, Message, NewMessage, parse_user_event
from schemas.base import utc_now

log = structlog.get_logger("connectors.push")

# Older events are not worth a notification (a notifier that was down catches up
# silently); a push service would drop most of them anyway after `TTL`.
STALE_AFTER = timedelta(minutes=15)
# A new subscription is used, and a removed one left, within this many seconds.
SUBSCRIPTIONS_TTL = 5.0
# Windows (and users' subscriptions) kept at most; beyond it, the windows over and empty
# are dropped first.
MAX_WINDOWS = 100_000
# Pushes under way at most; a decision waits for room (back-pressure on the consumer).
MAX_IN_FLIGHT = 256
# Events in batches of up to this long (BATCH_MIN_BYTES): a fetch and a commit per batch
# rather than per event or two; a notification may wait this much longer.
FETCH_MAX_WAIT_MS = 250
# A message to a user shown online is looked at again this many seconds later: the
# presence projection (streams) may not have written yet that their last device left just
# before the message came (a presence batch and a store write behind).
PRESENCE_SETTLE = 3.0

Observer = Callable[[str, str], None]


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.push-notifier"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the store says of a user and conversation now."""

    blocked: str | None  # why nothing is pushed: disabled, muted, online, no_subscription
    wait: float  # seconds until the grace is over (0: it is)
    preview: bool
    subscriptions: list[Subscription]


@dataclass(slots=True)
class Window:
    """One conversation's coalescing state."""

    user_id: str
    conversation_id: str
    until: float  # monotonic: no push before this
    pending: int = 0  # messages not pushed yet
    latest: Message | None = None
    timer: asyncio.TimerHandle | None = None


class Notifier:
    """Decides per `new_message`; `handle` is the whole decision (tests call it)."""

    def __init__(
        self,
        settings: Settings,
        store: PushStore,
        sender: PushSender,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sender = sender
        self.observer = observer
        self.clock = clock
        self.windows: dict[tuple[str, str], Window] = {}
        self._known: dict[str, tuple[float, list[Subscription]]] = {}
        self._room = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[Any]] = set()

    def _decided(self, message_id: str, decision: str) -> str:
        PUSH_DECISIONS.labels(decision).inc()
        if self.observer is not None:
            self.observer(message_id, decision)
        return decision

    async def handle(self, event: NewMessage) -> str:
        """What became of this message: one of `metrics.DECISIONS`."""
        message = event.data.message
        if message.direction != "inbound":
            return self._decided(message.id, "outbound")
        if utc_now() - event.occurred_at > STALE_AFTER:
            return self._decided(message.id, "stale")
        user, conv = event.user_id, message.conversation_id
        window = self.windows.get((user, conv))
        now = self.clock()
        if window is not None and window.until > now:
            # Within the interval (or the grace): counted, pushed once at its end.
            window.pending += 1
            window.latest = message
            self._arm(window)
            return self._decided(message.id, "coalesced")
        verdict = await self._verdict(user, conv)
        if verdict.blocked == "online":
            # Looked at again after PRESENCE_SETTLE (a flush): pushed after the grace if
            # the last device has gone by then, else counted `online` again.
            window = self._window(user, conv, now + PRESENCE_SETTLE)
            window.pending, window.latest = 1, message
            self._arm(window)
            return self._decided(message.id, "online")
        if verdict.blocked is not None:
            return self._decided(message.id, verdict.blocked)
        if verdict.wait > 0:
            window = self._window(user, conv, now + verdict.wait)
            window.pending, window.latest = 1, message
            self._arm(window)
            return self._decided(message.id, "deferred")
        self._window(user, conv, now + self.settings.push_interval)
        await self._push(verdict, message, 1)
        return self._decided(message.id, "sent")

    async def _verdict(self, user: str, conv: str) -> Verdict:
        """Whether, when and how to push to `user` for `conv`: most users have no
        subscription, and one read says so; the other three then go side by side."""
        subscriptions = await self._subscriptions(user)
        if not subscriptions:
            return Verdict("no_subscription", 0.0, False, [])
        mine, muted, presence = await asyncio.gather(
            self.store.user_settings(user),
            self.store.is_muted(user, conv),
            self.store.presence_of(user),
        )
        blocked: str | None = None
        if not mine.enabled:
            blocked = "disabled"
        elif muted:
            blocked = "muted"
        elif presence.online:
            blocked = "online"
        wait = 0.0
        if presence.last_seen is not None:
            # The grace counts from when the last device went away.
            since = (utc_now() - presence.last_seen).total_seconds()
            wait = max(0.0, self.settings.push_grace - since)
        preview = self.settings.push_preview and mine.preview
        return Verdict(blocked, wait, preview, subscriptions)

    async def _subscriptions(self, user: str) -> list[Subscription]:
        """The user's subscriptions, read at most every `SUBSCRIPTIONS_TTL` seconds: a
        store read costs more CPU than the rest of a decision, and most users have none."""
        now = self.clock()
        cached = self._known.get(user)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.store.of_user(user, self.settings.push_max_subscriptions_per_user)
        if len(self._known) >= MAX_WINDOWS:
            self._known.clear()  # a cache: starting over only costs reads
        self._known[user] = (now + SUBSCRIPTIONS_TTL, found)
        return found

    def _window(self, user: str, conv: str, until: float) -> Window:
        key = (user, conv)
        window = self.windows.get(key)
        if window is None:
            if len(self.windows) >= MAX_WINDOWS:
                self._prune()
            window = self.windows[key] = Window(user, conv, until)
        window.until = until
        return window

    def _prune(self) -> None:
        now = self.clock()
        for key, window in list(self.windows.items()):
            if window.until <= now and not window.pending:
                del self.windows[key]
        while len(self.windows) >= MAX_WINDOWS:  # all busy: the oldest loses its summary
            dropped = self.windows.pop(next(iter(self.windows)))
            if dropped.timer is not None:
                dropped.timer.cancel()

    def _arm(self, window: Window) -> None:
        if window.timer is None:
            delay = max(0.0, window.until - self.clock())
            window.timer = asyncio.get_running_loop().call_later(delay, self._due, window)

    def _due(self, window: Window) -> None:
        window.timer = None
        self._spawn(self._flush(window))

    async def _flush(self, window: Window) -> None:
        """The window is over: push what it gathered, if the user is still away."""
        user, conv, message = window.user_id, window.conversation_id, window.latest
        count, window.pending, window.latest = window.pending, 0, None
        if not count or message is None:
            return
        # Claimed for the next interval at once: a message arriving while the store is
        # asked joins the next summary instead of being pushed beside this one.
        window.until = self.clock() + self.settings.push_interval
        try:
            verdict = await self._verdict(user, conv)
        except PyMongoError as exc:
            log.warning("push_flush_failed", error=str(exc)[:200])
            verdict = Verdict("error", 0.0, False, [])
        if verdict.blocked is not None:
            window.until = self.clock()  # the next message is judged afresh
            self._decided(message.id, verdict.blocked)  # a held one: `online` again
            return
        if verdict.wait > 0:  # seen again since: the grace starts over
            window.until = self.clock() + verdict.wait
            window.pending += count
            window.latest = window.latest or message
            self._arm(window)
            return
        await self._push(verdict, message, count)
        self._decided(message.id, "sent")

    async def _push(self, verdict: Verdict, message: Message, count: int) -> None:
        """Start the push to each of the user's subscriptions (they run beside)."""
        push = notification(message, count, verdict.preview, self.settings.push_preview_chars)
        for sub in verdict.subscriptions:
            await self._room.acquire()
            self._spawn(self.sender.send(sub, push), room=True)

    def _spawn(self, work: Coroutine[Any, Any, Any], *, room: bool = False) -> None:
        task = asyncio.create_task(work, name="push")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, room))

    def _done(self, task: asyncio.Task[Any], room: bool) -> None:
        self._tasks.discard(task)
        if room:
            self._room.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("push_task_crashed", error=repr(error)[:300])

    async def idle(self) -> None:
        """Return once no push is under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for window in self.windows.values():
            if window.timer is not None:
                window.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def notification(message: Message, count: int, preview: bool, chars: int) -> Push:
    """The push of `count` messages of one conversation, `message` the latest."""
    platform = message.platform
    if preview:
        who = message.sender.name or message.sender.id
        title = f"{who[:80]} ({platform})"
        text = message.text if not message.deleted else ""
        snippet = text[:chars] + ("…" if len(text) > chars else "")
        body = snippet if count == 1 else f"{count} new messages: {snippet}"
    else:
        title = f"New message ({platform})"
        body = "1 new message" if count == 1 else f"{count} new messages"
    data = {
        "title": title,
        "body": body,
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "platform": platform,
        "count": count,
        "url": f"/#conversation={message.conversation_id}",
    }
    payload = orjson.dumps(data)
    if len(payload) > MAX_PAYLOAD_BYTES:  # multi-byte text: cut the preview shorter
        data["body"] = body[: len(body) // 4]
        payload = orjson.dumps(data)
    # Topic: at most 32 url-safe base64 characters; a hash names the conversation.
    topic = b64url(hashlib.sha256(message.conversation_id.encode()).digest())[:32]
    return Push(payload, topic)


class NotifierConsumer:
    """Feeds `hub.user-events` to a `Notifier`; survives Kafka and store outages."""

    def __init__(self, settings: Settings, notifier: Notifier, publisher: Publisher) -> None:
        self.settings = settings
        self.notifier = notifier
        self.publisher = publisher
        self.topic = Topics.from_settings(settings).user_events
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="push-notifier")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.notifier.close()

    async def _run(self) -> None:
        await consume_forever(
            "push notifier",
            self._session,
            outages=(KafkaError, PyMongoError, OSError),
            stopping=self._stopping,
        )

    def _session(self) -> Session:
        consumer = create_consumer(
            self.settings,
            self.topic,
            group_id=group_id(self.settings),
            # A new group starts at the beginning; STALE_AFTER keeps old news quiet.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_min_bytes=BATCH_MIN_BYTES,
        )
        return consumer, functools.partial(self._consume, consumer)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                for record in records:
                    await self._one(record)
            if batch:
                await consumer.commit()

    async def _one(self, record: ConsumerRecord) -> None:
        value: bytes = record.value or b""
        # Most user events are not new messages: skip them before parsing.
        if b'"new_message"' not in value:
            return
        try:
            event = parse_user_event(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            await self.publisher.dead_letter(
                reason=f"push notifier: {where}: {first.get('msg', 'invalid')}"[:500],
                error_type="validation_error",
                platform="",
                account_id="",
                payload=value,
                source=DeadLetterSource(
                    topic=record.topic, partition=record.partition, offset=record.offset
                ),
            )
            return
        if not isinstance(event, NewMessage):
            return
        try:
            await self.notifier.handle(event)
        except PyMongoError:
            raise  # an outage: the batch is read again once it is over
        except Exception:
            # One record must never end the task.
            log.exception("push decision crashed", message_id=event.data.message.id)


async def start_notifier(
    settings: Settings,
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    vapid: Vapid,
    publisher: Publisher,
) -> NotifierConsumer:
    """The connectors process's notifier, consuming in the background."""
    store = PushStore(db)
    try:
        await store.ensure_indexes()
    except PyMongoError as exc:  # reads still work, only slower
        log.warning("push_indexes_not_ensured", error=str(exc)[:200])
    notifier = Notifier(settings, store, PushSender(settings, http, vapid, store))
    consumer = NotifierConsumer(settings, notifier, publisher)
    consumer.start()
    return consumer
